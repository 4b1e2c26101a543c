/// The `Host` (HTTP/1.1) or `:authority` (HTTP/2) names the REST routes and `/outputs/`
/// answer: the defence against DNS rebinding, where a web page's own name is pointed at
/// 127.0.0.1 so that a browser lets the page read a loopback server's answers. Such a request
/// carries the page's name, which is not a loopback name.
///
/// A server listening on a loopback address answers loopback names (`localhost`,
/// `127.0.0.0/8`, `[::1]`, with any port), the names given with `--allowed-host` and the DNS
/// names of its TLS certificate (a rebinding page cannot pass a TLS handshake for those); one
/// listening elsewhere answers any name unless `--allowed-host` is given, then only those,
/// the certificate's and the loopback names. A request without a name (HTTP/1.0, an HTTP/2
/// client that sends no `:authority`) is not a browser's and is answered.
public struct AllowedHosts: Sendable, Equatable {
    /// Lower-cased, without a port.
    let names: Set<String>
    /// Whether names are checked at all.
    let isChecked: Bool

    /// Any name is answered.
    public static let any = AllowedHosts(names: [], isChecked: false)

    /// The names answered by a server listening on `listeningHost`, with `extra` names
    /// (`--allowed-host`) and its certificate's `certificateNames`.
    public init(listeningOn listeningHost: String, extra: [String], certificateNames: [String] = []) {
        self.init(
            names: Set((extra + certificateNames).map { Self.hostName(of: $0) }),
            isChecked: RunningServer.isLoopback(listeningHost) || !extra.isEmpty)
    }

    private init(names: Set<String>, isChecked: Bool) {
        self.names = names
        self.isChecked = isChecked
    }

    /// Whether a request naming `authority` (`host[:port]`, `[v6][:port]`) is answered.
    func allows(authority: String) -> Bool {
        guard isChecked else { return true }
        let name = Self.hostName(of: authority)
        return names.contains(name) || RunningServer.isLoopback(name)
    }

    /// The host of `authority`, lower-cased, without its port or a trailing dot; an IPv6
    /// address in brackets (added when a bare one is given, as `--allowed-host ::1` may be).
    static func hostName(of authority: String) -> String {
        var host = Substring(authority.lowercased())
        let colons = host.filter { $0 == ":" }.count
        if host.hasPrefix("[") {
            if let end = host.firstIndex(of: "]") { host = host[...end] }
        } else if colons > 1 {
            return "[\(host)]"
        } else if colons == 1, let colon = host.firstIndex(of: ":") {
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        return String(host)
    }
}
