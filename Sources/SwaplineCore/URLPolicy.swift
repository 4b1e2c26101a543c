/// Which URLs the service fetches on a client's behalf (SSRF protection). One policy value is
/// applied twice: by CreateTask and ProcessSync on both surfaces, to the URL as written
/// (`check(_:)`, no DNS), and by the worker before every connection, to every address the
/// host resolved to (`check(_:resolvedFor:)`), including each redirect hop.
///
/// By default only public addresses are fetched from: loopback, private-use, carrier-grade
/// NAT, link-local (169.254.169.254, the cloud metadata service), multicast, broadcast and
/// every other block of `SpecialPurposeAddresses` are refused, as are `localhost` and names
/// under `.localhost`. Development and demos loosen it with `allowsPrivateAddresses` or an
/// allow list; a deny list refuses hosts whatever else says. Order: deny, allow, the default.
public struct URLPolicy: Sendable, Equatable {
    /// Longest URL accepted, in bytes.
    public static let maxURLLength = 2048

    /// `--allow-private-urls`: skip the address and `localhost` checks (the syntax rules and
    /// the deny list still apply).
    public var allowsPrivateAddresses: Bool
    /// `--url-allow-host`: hosts fetched from even though they are not public.
    public var allowedHosts: [HostPattern]
    /// `--url-deny-host`: hosts never fetched from.
    public var deniedHosts: [HostPattern]

    public init(allowsPrivateAddresses: Bool = false, allowedHosts: [HostPattern] = [], deniedHosts: [HostPattern] = []) {
        self.allowsPrivateAddresses = allowsPrivateAddresses
        self.allowedHosts = allowedHosts
        self.deniedHosts = deniedHosts
    }

    /// Whether this policy is looser than the default (worth a line in the start-up log).
    public var isRelaxed: Bool { allowsPrivateAddresses || !allowedHosts.isEmpty }

    /// Checks a URL as written: its syntax, and its host when the host is an address or a
    /// local name. A public-looking name passes; where it resolves to is for the connect-time
    /// check.
    public func check(_ text: String) -> Result<CheckedURL, URLViolation> {
        let url: CheckedURL
        switch CheckedURL.parse(text) {
        case .success(let parsed): url = parsed
        case .failure(let violation): return .failure(violation)
        }
        if deniedHosts.contains(where: { $0.matches(url.host, port: url.port) }) {
            return .failure(URLViolation(.deniedHost, "names a host this service does not fetch from"))
        }
        if allowsPrivateAddresses || allowedHosts.contains(where: { $0.matches(url.host, port: url.port) }) {
            return .success(url)
        }
        switch url.host {
        case .address(let address):
            if let refusal = SpecialPurposeAddresses.refusal(for: address) {
                return .failure(URLViolation(.internalAddress, "must not point to a private or special-purpose address: \(address) is \(refusal)"))
            }
        case .name(let name):
            if name == "localhost" || name.hasSuffix(".localhost") {
                return .failure(URLViolation(.localName, "must not point to localhost"))
            }
        }
        return .success(url)
    }

    /// Checks one address that `url`'s host resolved to, right before connecting to it;
    /// nil when the connection may be made. `url` has passed `check(_:)`.
    public func check(_ address: IPAddress, resolvedFor url: CheckedURL) -> URLViolation? {
        if deniedHosts.contains(where: { $0.matches(url.host, port: url.port) || $0.matches(address, port: url.port) }) {
            return URLViolation(.deniedHost, "names a host this service does not fetch from")
        }
        if allowsPrivateAddresses
            || allowedHosts.contains(where: { $0.matches(url.host, port: url.port) || $0.matches(address, port: url.port) })
        {
            return nil
        }
        if let refusal = SpecialPurposeAddresses.refusal(for: address) {
            return URLViolation(.internalAddress, "resolves to \(address), \(refusal)")
        }
        return nil
    }
}

/// One entry of `--url-allow-host` / `--url-deny-host`, optionally limited to one port:
/// `example.com` (that name), `*.example.com` (names under it, not itself), `10.1.2.3` or
/// `[fd00::1]` (that address, in any spelling a URL uses), `10.0.0.0/8` or `fd00::/8` (a
/// network; matched against literal hosts and against the addresses names resolve to).
/// `:PORT` after a name or address (`127.0.0.1:8000`, `[::1]:8000`) limits it to that port.
public struct HostPattern: Sendable, Hashable, CustomStringConvertible {
    enum Matcher: Sendable, Hashable {
        case name(String)
        case subdomains(of: String)
        case network(IPAddress, prefixLength: Int)
    }

    let matcher: Matcher
    let port: Int?
    public let description: String

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(_ text: String) throws(ParseError) {
        description = text
        func fail(_ why: String) -> ParseError { ParseError(description: "'\(text)' \(why)") }
        var hostText = Substring(text)
        var portText: Substring?
        if hostText.hasPrefix("[") {
            guard let close = hostText.firstIndex(of: "]") else { throw fail("has no closing bracket") }
            let rest = hostText[hostText.index(after: close)...]
            hostText = hostText[hostText.index(after: hostText.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw fail("has text after the bracket that is no :PORT") }
                portText = rest.dropFirst()
            }
        } else if hostText.filter({ $0 == ":" }).count == 1 {
            let colon = hostText.firstIndex(of: ":")!
            portText = hostText[hostText.index(after: colon)...]
            hostText = hostText[..<colon]
        }
        if let portText {
            guard let value = Int(portText), portText.allSatisfy(\.isNumber), (1...65535).contains(value) else {
                throw fail("has an invalid port")
            }
            port = value
        } else {
            port = nil
        }
        if let slash = hostText.firstIndex(of: "/") {
            guard let length = Int(hostText[hostText.index(after: slash)...]), let network = IPAddress(numeric: String(hostText[..<slash]))
            else { throw fail("is no network: write ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/8") }
            let maximum = if case .v4 = network { 32 } else { 128 }
            guard (0...maximum).contains(length) else { throw fail("has a prefix length outside 0...\(maximum)") }
            matcher = .network(network, prefixLength: length)
            return
        }
        if hostText.contains(":") {
            guard let address = IPAddress(ipv6: hostText) else { throw fail("is no IPv6 address") }
            matcher = .network(address.unmapped, prefixLength: address.unmapped.bitCount)
            return
        }
        var name = hostText.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name.hasPrefix("*.") {
            let parent = String(name.dropFirst(2))
            guard case .success(let url) = CheckedURL.parse("http://\(parent)/"), case .name = url.host else {
                throw fail("is no name pattern: write *.example.com")
            }
            matcher = .subdomains(of: parent)
            return
        }
        switch CheckedURL.parse("http://\(name)/") {
        case .success(let url):
            switch url.host {
            case .name(let parsed): matcher = .name(parsed)
            case .address(let address): matcher = .network(address.unmapped, prefixLength: address.unmapped.bitCount)
            }
        case .failure(let violation):
            throw fail("is no host name or address: it \(violation.reason)")
        }
    }

    /// Whether a URL's host (as written) and port match.
    func matches(_ host: CheckedURL.Host, port: Int) -> Bool {
        guard self.port == nil || self.port == port else { return false }
        switch (matcher, host) {
        case (.name(let expected), .name(let name)): return name == expected
        case (.subdomains(let parent), .name(let name)): return name.hasSuffix("." + parent)
        case (.network, .address(let address)): return matches(address, port: port)
        default: return false
        }
    }

    /// Whether an address (literal or resolved) and port match.
    func matches(_ address: IPAddress, port: Int) -> Bool {
        guard self.port == nil || self.port == port, case .network(let network, let length) = matcher else { return false }
        return address.unmapped.isIn(network, length: length)
    }
}

extension IPAddress {
    fileprivate var bitCount: Int {
        if case .v4 = self { return 32 }
        return 128
    }
}
