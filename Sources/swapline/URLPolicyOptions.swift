import ArgumentParser
import Logging
import SwaplineCore

/// The URL policy (docs/security.md): which source and target URLs `serve` accepts in
/// CreateTask/ProcessSync and which a worker connects to. Shared by `swapline serve` and
/// `swapline worker`; give both the same values.
struct URLPolicyOptions: ParsableArguments {
    @Flag(
        name: .customLong("allow-private-urls"),
        help: "Accept and fetch task URLs of loopback, private and other non-public addresses and localhost: development and demos only (docs/security.md).")
    var allowPrivateURLs = false

    @Option(
        name: .customLong("url-allow-host"),
        help: ArgumentHelp(
            "A host whose URLs are accepted and fetched even though it is not public: a name, *.domain, an address or ADDRESS/LENGTH, optionally with :PORT; repeat for several.",
            valueName: "host"))
    var allowedHosts: [String] = []

    @Option(
        name: .customLong("url-deny-host"),
        help: ArgumentHelp(
            "A host whose URLs are always refused, whatever else allows them (same forms as --url-allow-host); repeat for several.",
            valueName: "host"))
    var deniedHosts: [String] = []

    func validate() throws {
        for text in allowedHosts + deniedHosts {
            do {
                _ = try HostPattern(text)
            } catch {
                throw ValidationError("--url-allow-host/--url-deny-host: \(error)")
            }
        }
    }

    var policy: URLPolicy {
        // validate() has parsed every entry.
        URLPolicy(
            allowsPrivateAddresses: allowPrivateURLs, allowedHosts: allowedHosts.compactMap { try? HostPattern($0) },
            deniedHosts: deniedHosts.compactMap { try? HostPattern($0) })
    }

    /// One line at start saying what is fetched; a warning when it is looser than the default.
    func log(to logger: Logger, role: String) {
        var parts: [String] = []
        if allowPrivateURLs { parts.append("private and loopback addresses ALLOWED (--allow-private-urls)") }
        if !allowedHosts.isEmpty { parts.append("also allowed: \(allowedHosts.joined(separator: ", "))") }
        if !deniedHosts.isEmpty { parts.append("denied: \(deniedHosts.joined(separator: ", "))") }
        if policy.isRelaxed {
            logger.warning("URL policy of \(role): \(parts.joined(separator: "; ")); looser than the default (docs/security.md)")
        } else {
            logger.info("URL policy of \(role): public addresses only\(parts.isEmpty ? "" : "; " + parts.joined(separator: "; "))")
        }
    }
}
