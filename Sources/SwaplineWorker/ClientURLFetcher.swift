import CurlHTTP
import SwaplineCore

/// Where the addresses of a host name come from; tests inject their own.
public protocol HostResolver: Sendable {
    /// Every address of `host`; empty when it has none.
    func addresses(of host: String) async throws -> [IPAddress]
}

/// `getaddrinfo`, on a Dispatch thread (`SystemResolver`).
public struct SystemHostResolver: HostResolver {
    public init() {}

    public func addresses(of host: String) async throws -> [IPAddress] {
        try await SystemResolver.addresses(of: host).compactMap(IPAddress.init(bytes:))
    }
}

/// A file fetched from a client's URL.
public struct FetchedFile: Sendable, Equatable {
    public var bytes: [UInt8]
    /// The response's `Content-Type`, when it sent one.
    public var contentType: String?
    /// Where the bytes came from after redirects, in canonical form.
    public var url: CheckedURL
}

/// Why a client's URL was not fetched. `reason` is safe to show the client: it never carries
/// what a lookup or a connection attempt revealed about the network on this side (which
/// addresses a name has, which ports answer), so the service cannot be used to map it;
/// `detail` is for the logs.
public struct ClientURLError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public let detail: String

    public init(reason: String, detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason) [\(detail)]" }
}

/// Fetches URLs that clients sent (a task's source and target) under the URL policy, at
/// connect time: every hop's URL is checked, its host is resolved once and every address
/// checked, and libcurl is pinned to exactly those addresses (`AddressPinning`), so a name that
/// resolves inward, or rebinds between the check and the connection, reaches nothing inside.
/// Redirects are followed here, not by curl, at most `maxRedirects` of them, each hop checked
/// like the first. Proxies from the environment are ignored; a configured proxy is used as is
/// (it then resolves and connects, so only the URL check is made here and the address checks
/// are the proxy's). A peer that sends slower than `lowSpeedLimit` is dropped.
public struct ClientURLFetcher: Sendable {
    public struct Configuration: Sendable {
        public var policy = URLPolicy()
        /// Largest file accepted (`--max-input-bytes`).
        public var maxBytes = 100 * 1024 * 1024
        public var maxRedirects = 5
        public var connectTimeout: Duration = .seconds(10)
        /// Limit on each hop.
        public var totalTimeout: Duration = .seconds(120)
        public var lowSpeedLimit = LowSpeedLimit(bytesPerSecond: 1024, duration: .seconds(30))
        /// `--url-proxy`: an HTTP proxy every fetch goes through.
        public var proxy: String?

        public init() {}
    }

    let http: CurlHTTPClient
    public let configuration: Configuration
    let resolver: any HostResolver

    /// `http` should be a client of its own, so that only checked connections are ever in its
    /// pool.
    public init(http: CurlHTTPClient, configuration: Configuration, resolver: any HostResolver = SystemHostResolver()) {
        self.http = http
        self.configuration = configuration
        self.resolver = resolver
    }

    /// Not reported to clients beyond this sentence: a name that does not exist, one that only
    /// has internal addresses and a failed lookup look alike from outside.
    static let noPublicAddress = "cannot be fetched: its host does not resolve to a public address"

    public func fetch(_ text: String) async throws(ClientURLError) -> FetchedFile {
        var current = text
        var hop = 0
        while true {
            let url = try check(current, hop: hop)
            let response = try await get(url)
            switch response.status {
            case 200:
                return FetchedFile(bytes: response.body, contentType: response.headers["content-type"], url: url)
            case 301, 302, 303, 307, 308:
                guard let location = response.headers["location"], !location.isEmpty else {
                    throw ClientURLError(reason: "cannot be fetched: a redirect without a Location", detail: "\(url) answered \(response.status)")
                }
                guard hop < configuration.maxRedirects else {
                    throw ClientURLError(
                        reason: "cannot be fetched: more than \(configuration.maxRedirects) redirects", detail: "\(url) -> \(location)")
                }
                current = url.resolving(location)
                hop += 1
            default:
                throw ClientURLError(reason: "cannot be fetched: HTTP \(response.status)", detail: "\(url) answered \(response.status)")
            }
        }
    }

    private func check(_ text: String, hop: Int) throws(ClientURLError) -> CheckedURL {
        switch configuration.policy.check(text) {
        case .success(let url):
            return url
        case .failure(let violation) where hop == 0:
            throw ClientURLError(reason: violation.reason, detail: "\(text): \(violation.reason)")
        case .failure(let violation):
            // The client's own server sent this Location: showing it back reveals nothing.
            throw ClientURLError(reason: "redirects to \(Self.printable(text)), which \(violation.reason)", detail: "redirect to \(text): \(violation.reason)")
        }
    }

    /// One request, to the checked addresses of `url`'s host.
    private func get(_ url: CheckedURL) async throws(ClientURLError) -> HTTPResponse {
        var request = HTTPRequest(
            url: url.url, connectTimeout: configuration.connectTimeout, totalTimeout: configuration.totalTimeout,
            maxResponseBytes: configuration.maxBytes)
        request.lowSpeedLimit = configuration.lowSpeedLimit
        if let proxy = configuration.proxy {
            // The proxy resolves and connects (a worker behind one often has no DNS for the
            // outside at all): the URL check above is all that can be done here.
            request.proxy = .url(proxy)
        } else {
            let addresses = try await checkedAddresses(of: url)
            request.proxy = .none
            request.pinning = AddressPinning(host: url.hostText, port: url.port, addresses: addresses.map(\.description))
        }
        do {
            return try await http.execute(request)
        } catch {
            let reason =
                switch error {
                case .responseTooLarge: "cannot be fetched: larger than \(configuration.maxBytes) bytes"
                case .timedOut: "cannot be fetched: timed out"
                case .cancelled, .clientShutDown: "cannot be fetched: cancelled"
                case .refusedAddress: Self.noPublicAddress
                case .couldNotConnect, .transport: "cannot be fetched: could not connect or the connection failed"
                }
            throw ClientURLError(reason: reason, detail: "\(url): \(error)")
        }
    }

    /// The addresses of `url`'s host, each passed by the policy; a literal address has been
    /// judged by `check` already.
    private func checkedAddresses(of url: CheckedURL) async throws(ClientURLError) -> [IPAddress] {
        let name: String
        switch url.host {
        case .address(let address): return [address]
        case .name(let host): name = host
        }
        let addresses: [IPAddress]
        do {
            addresses = try await resolver.addresses(of: name)
        } catch {
            throw ClientURLError(reason: Self.noPublicAddress, detail: "\(name): \(error)")
        }
        guard !addresses.isEmpty else {
            throw ClientURLError(reason: Self.noPublicAddress, detail: "\(name) has no addresses")
        }
        // One inward address refuses the name: which of its addresses a connection would use
        // is not ours to predict.
        for address in addresses {
            if let violation = configuration.policy.check(address, resolvedFor: url) {
                throw ClientURLError(
                    reason: violation.kind == .deniedHost ? "names a host this service does not fetch from" : Self.noPublicAddress,
                    detail: "\(name) \(violation.reason)")
            }
        }
        return addresses
    }

    /// A URL from a redirect, shortened and stripped of anything unprintable for a message.
    private static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.filter { $0.value > 0x20 && $0.value != 0x7F }.prefix(200).map(Character.init))
        return text.unicodeScalars.count > 200 ? cleaned + "…" : cleaned
    }
}
