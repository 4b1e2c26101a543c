import H2Transport
import NIOCore

/// How a client in the server's own process (`swapline serve --workers N`) reaches the server
/// through its own port, like any other client.
///
/// On a TLS port the client verifies the server as strictly as any other: the server's own
/// certificate file is the one authority it trusts for this connection, and the URL's host is a
/// name that certificate is valid for. When the certificate does not name the address the
/// server listens on (a certificate for `swapline.example.com` on a server listening on
/// 0.0.0.0), the URL carries the certificate's name and `connectTo` sends the connection to the
/// listening address instead, so nothing depends on DNS and no check is skipped (the same for a
/// certificate that names only other IP addresses).
public struct LocalEndpoint: Sendable, Equatable {
    /// Base URL of the server.
    public var url: String
    /// TLS only: the PEM file of the server's own certificate, trusted for this connection.
    public var caFile: String?
    /// TLS only, when the URL's host is not the listening address: where to connect instead,
    /// as `HOST:PORT`.
    public var connectTo: String?

    public init(url: String, caFile: String? = nil, connectTo: String? = nil) {
        self.url = url
        self.caFile = caFile
        self.connectTo = connectTo
    }

    /// The endpoint of a server listening on `host:port`, with `tls` when the port speaks TLS.
    public init(host: String, port: Int, tls: TLSCredentials?) throws(LocalEndpointError) {
        // A wildcard address is reached through loopback.
        let address = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
        guard let tls else {
            self.init(url: "http://\(Self.urlHost(address)):\(port)")
            return
        }
        let canonicalAddress = try? SocketAddress(ipAddress: address, port: 0).ipAddress
        if let canonicalAddress, tls.ipAddresses.contains(canonicalAddress) {
            self.init(url: "https://\(Self.urlHost(canonicalAddress)):\(port)", caFile: tls.certificateFile)
            return
        }
        if canonicalAddress == nil, tls.dnsNames.contains(where: { $0.lowercased() == address.lowercased() }) {
            self.init(url: "https://\(address):\(port)", caFile: tls.certificateFile)
            return
        }
        // "localhost" first: the most likely name of a loopback connection; else any name, else
        // any address the certificate is valid for (the connection still goes to `address`).
        let named = tls.dnsNames.first { $0.lowercased() == "localhost" } ?? tls.dnsNames.first
        guard let name = named.map(Self.concreteName) ?? tls.ipAddresses.first.map(Self.urlHost) else {
            throw LocalEndpointError(certificateFile: tls.certificateFile, address: address)
        }
        self.init(url: "https://\(name):\(port)", caFile: tls.certificateFile, connectTo: "\(Self.urlHost(address)):\(port)")
    }

    /// A host name a certificate name matches: a wildcard (`*.example.com`) stands for any
    /// one label.
    private static func concreteName(_ name: String) -> String {
        name.hasPrefix("*.") ? "swapline" + name.dropFirst() : name
    }

    private static func urlHost(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}

/// The server's certificate names no DNS name or IP address at all, so in-process clients could
/// not verify it.
public struct LocalEndpointError: Error, Sendable, CustomStringConvertible {
    public var certificateFile: String
    public var address: String

    public var description: String {
        "the certificate in \(certificateFile) names neither \(address) nor any DNS name or IP address, so the in-process "
            + "workers (--workers) cannot verify the server they connect to: give it a subject alternative name for \(address) or a DNS name"
    }
}
