/// Why a URL may not be fetched. `reason` is written for the client that sent the URL and
/// completes a sentence naming the field ("params.source_url must not …").
public struct URLViolation: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case malformed, tooLong, scheme, userinfo
        /// A literal address (or, at connect time, a resolved one) that is not public.
        case internalAddress
        /// `localhost` or a name under `.localhost` (RFC 6761: they always mean this machine).
        case localName
        /// On the `--url-deny-host` list.
        case deniedHost
    }

    public let kind: Kind
    public let reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}

/// An absolute http(s) URL taken apart and put back together in one canonical spelling: the
/// scheme and host in lower case, a literal address as the address it means (so
/// `http://0x7f.1/` is `http://127.0.0.1/`), the trailing dot of a name dropped, no userinfo,
/// no fragment, the port only when it is not the scheme's default.
///
/// This parse is the only one that decides where a fetch goes: the URL policy judges its
/// host, and the downloader hands `url` (not the client's text) to libcurl, pinned to the
/// addresses the policy checked, so a second parser never gets to read the client's spelling.
public struct CheckedURL: Sendable, Hashable, CustomStringConvertible {
    public enum Host: Sendable, Hashable {
        /// A domain name, lower case, without a trailing dot.
        case name(String)
        case address(IPAddress)
    }

    /// `http` or `https`.
    public let scheme: String
    public let host: Host
    /// The port connected to: the URL's, or 80/443.
    public let port: Int
    /// The path and query sent in the request, starting with `/`.
    public let target: String

    /// The name, or the address in text (IPv6 without brackets), e.g. for CURLOPT_RESOLVE.
    public var hostText: String {
        switch host {
        case .name(let name): name
        case .address(let address): address.description
        }
    }

    /// `host[:port]` as written in a URL: IPv6 in brackets, the port when not the default.
    public var authority: String {
        var text: String
        switch host {
        case .name(let name): text = name
        case .address(.v4(let value)): text = IPAddress.v4(value).description
        case .address(let address): text = "[\(address)]"
        }
        if port != Self.defaultPort(scheme) { text += ":\(port)" }
        return text
    }

    /// The canonical URL: what is actually requested.
    public var url: String { "\(scheme)://\(authority)\(target)" }

    public var description: String { url }

    /// Scheme, host and port equal: the same origin (RFC 6454).
    public func isSameOrigin(as other: CheckedURL) -> Bool {
        scheme == other.scheme && host == other.host && port == other.port
    }

    /// Resolves a `Location` header value against this URL (RFC 3986 §5.2, without removing
    /// dot segments, which only ever change the path). The result is text again: it goes
    /// through the URL policy like any URL before it is fetched.
    public func resolving(_ reference: String) -> String {
        let origin = "\(scheme)://\(authority)"
        if Self.hasScheme(reference) { return reference }
        if reference.hasPrefix("//") { return "\(scheme):\(reference)" }
        if reference.hasPrefix("/") { return origin + reference }
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        if reference.isEmpty || reference.hasPrefix("#") { return url }
        if reference.hasPrefix("?") { return origin + path + reference }
        let directory = path[...(path.lastIndex(of: "/") ?? path.startIndex)]
        return origin + directory + reference
    }

    private static func hasScheme(_ reference: String) -> Bool {
        guard let colon = reference.firstIndex(of: ":"), let first = reference.first, first.isASCII, first.isLetter else { return false }
        return reference[..<colon].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
    }

    static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }

    private init(scheme: String, host: Host, port: Int, target: String) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.target = target
    }

    /// Parses `text` strictly: only `http://` and `https://`, no userinfo, a host, an optional
    /// port of 1...65535, at most `URLPolicy.maxURLLength` bytes, no spaces or control
    /// characters. Anything two URL parsers could read differently is refused rather than
    /// guessed at: backslashes, percent signs or non-ASCII bytes in the host, IPv6 zone ids, a
    /// numeric last label that is no valid IPv4 address.
    public static func parse(_ text: String) -> Result<CheckedURL, URLViolation> {
        let bytes = Array(text.utf8)
        if bytes.isEmpty { return .failure(URLViolation(.malformed, "is required")) }
        if bytes.count > URLPolicy.maxURLLength {
            return .failure(URLViolation(.tooLong, "is longer than \(URLPolicy.maxURLLength) bytes"))
        }
        if bytes.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            return .failure(URLViolation(.malformed, "must not contain spaces or control characters"))
        }
        let scheme: String
        if hasPrefixIgnoringCase(bytes, "https://") {
            scheme = "https"
        } else if hasPrefixIgnoringCase(bytes, "http://") {
            scheme = "http"
        } else {
            return .failure(URLViolation(.scheme, "must be an absolute http:// or https:// URL"))
        }
        let authorityStart = scheme.utf8.count + 3
        let authorityEnd = bytes[authorityStart...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }
            ?? bytes.count
        let authority = bytes[authorityStart..<authorityEnd]
        if authority.contains(UInt8(ascii: "@")) {
            return .failure(URLViolation(.userinfo, "must not contain a user name or password (userinfo@)"))
        }
        let host: Host
        let portText: ArraySlice<UInt8>?
        switch parseHost(authority) {
        case .success(let parsed): (host, portText) = parsed
        case .failure(let violation): return .failure(violation)
        }
        var port = defaultPort(scheme)
        if let portText {
            guard (1...5).contains(portText.count), portText.allSatisfy({ (0x30...0x39).contains($0) }),
                let value = Int(String(decoding: portText, as: UTF8.self)), (1...65535).contains(value)
            else { return .failure(URLViolation(.malformed, "has an invalid port")) }
            port = value
        }
        var targetBytes = bytes[authorityEnd...]
        if let fragment = targetBytes.firstIndex(of: UInt8(ascii: "#")) { targetBytes = targetBytes[..<fragment] }
        var target = String(decoding: targetBytes, as: UTF8.self)
        if !target.hasPrefix("/") { target = "/" + target }
        return .success(CheckedURL(scheme: scheme, host: host, port: port, target: target))
    }

    /// The host (and the port's text, when there is a colon) of an authority without userinfo.
    private static func parseHost(_ authority: ArraySlice<UInt8>) -> Result<(Host, ArraySlice<UInt8>?), URLViolation> {
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else {
                return .failure(URLViolation(.malformed, "has a malformed IPv6 host"))
            }
            let inner = authority[(authority.startIndex + 1)..<close]
            let rest = authority[(close + 1)...]
            if !rest.isEmpty, rest.first != UInt8(ascii: ":") {
                return .failure(URLViolation(.malformed, "has an invalid port"))
            }
            if inner.contains(UInt8(ascii: "%")) {
                return .failure(URLViolation(.malformed, "must not carry an IPv6 zone id"))
            }
            guard inner.allSatisfy({ $0 < 0x80 }), let address = IPAddress(ipv6: String(decoding: inner, as: UTF8.self)[...]) else {
                return .failure(URLViolation(.malformed, "has a malformed IPv6 host"))
            }
            return .success((.address(address), rest.isEmpty ? nil : rest.dropFirst()))
        }
        let colons = authority.indices.filter { authority[$0] == UInt8(ascii: ":") }
        if colons.count > 1 {
            return .failure(URLViolation(.malformed, "has a malformed host: an IPv6 address must be in brackets"))
        }
        let hostBytes = colons.first.map { authority[..<$0] } ?? authority
        let portText = colons.first.map { authority[($0 + 1)...] }
        if hostBytes.isEmpty { return .failure(URLViolation(.malformed, "must name a host")) }
        if hostBytes.contains(where: { $0 >= 0x80 }) {
            return .failure(URLViolation(.malformed, "must write its host in ASCII (an internationalised name in its xn-- form)"))
        }
        let allowed = { (byte: UInt8) in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
        }
        guard hostBytes.allSatisfy(allowed) else {
            return .failure(URLViolation(.malformed, "has characters that are not allowed in a host name"))
        }
        // ASCII only (checked above), so lowering the bytes is all `lowercased()` would do.
        var name = String(decoding: hostBytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
        if name.hasSuffix(".") { name.removeLast() }
        switch IPAddress.spelling(ofHost: name[...]) {
        case .ipv4(let address):
            return .success((.address(address), portText))
        case .invalidIPv4:
            return .failure(URLViolation(.malformed, "has a host that ends in a number but is no valid IPv4 address"))
        case .name:
            guard !name.isEmpty, name.utf8.count <= 253, Self.labelsHaveDNSLengths(name) else {
                return .failure(URLViolation(.malformed, "has a malformed host name"))
            }
            return .success((.name(name), portText))
        }
    }

    /// Every dot-separated label is 1 to 63 bytes long.
    private static func labelsHaveDNSLengths(_ name: String) -> Bool {
        var length = 0
        for byte in name.utf8 {
            if byte == UInt8(ascii: ".") {
                guard (1...63).contains(length) else { return false }
                length = 0
            } else {
                length += 1
            }
        }
        return (1...63).contains(length)
    }

    private static func hasPrefixIgnoringCase(_ bytes: [UInt8], _ prefix: String) -> Bool {
        guard bytes.count >= prefix.utf8.count else { return false }
        return zip(bytes, prefix.utf8).allSatisfy { byte, expected in
            ((0x41...0x5A).contains(byte) ? byte + 0x20 : byte) == expected
        }
    }
}
