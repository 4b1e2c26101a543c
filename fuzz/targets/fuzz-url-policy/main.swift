// libFuzzer target: the URL policy (CheckedURL.parse, URLPolicy.check, HostPattern and
// CheckedURL.resolving), the code that decides where the server and its workers fetch from.
//
// Input: a URL; after the first newline, an optional redirect `Location` resolved against it,
// and after a second newline an optional `--url-allow-host` pattern.
// Besides "no crash", it checks that the canonical spelling is a fixed point: it parses back
// to the same URL and gets the same policy verdict, since the downloader fetches the
// canonical spelling, not the client's text.
import FuzzDriver
import SwaplineCore

runFuzzer { bytes in
    let parts = String(decoding: bytes, as: UTF8.self).split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        .map(String.init)
    checkURL(parts[0], location: parts.count > 1 ? parts[1] : nil, allowHost: parts.count > 2 ? parts[2] : nil)
}

func checkURL(_ text: String, location: String?, allowHost: String?) {
    var policies = [URLPolicy(), URLPolicy(allowsPrivateAddresses: true)]
    if let allowHost, let pattern = try? HostPattern(allowHost) {
        policies.append(URLPolicy(allowedHosts: [pattern]))
        policies.append(URLPolicy(deniedHosts: [pattern]))
    }
    for policy in policies {
        guard case .success(let url) = policy.check(text) else { continue }
        // A canonical spelling longer than the limit (`0x7f.1` is shorter than `127.0.0.1`)
        // is refused as too long, which is safe.
        if url.url.utf8.count <= URLPolicy.maxURLLength {
            guard case .success(let again) = policy.check(url.url) else {
                fatalError("the canonical spelling \(url.url) of an accepted URL is refused")
            }
            precondition(again == url, "the canonical spelling \(url.url) parses to \(again.url)")
        }
        if let location {
            _ = policy.check(url.resolving(location))
        }
    }
}
