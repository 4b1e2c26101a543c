import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import RPCCore

/// A listening server for HTTP/2 (h2c, prior knowledge: one nghttp2 session per connection)
/// and HTTP/1.1 on the same port, told apart per connection by its first bytes; each
/// connection lives on the event loop that owns its socket.
///
/// With `tls`, every connection starts with a TLS handshake (swift-nio-ssl) and the same
/// protocols run inside it, chosen by ALPN; the port then serves TLS only.
public final class H2Server: Sendable {
    public let localAddress: SocketAddress
    private let serverChannel: any Channel
    private let connections: ConnectionRegistry
    private let logger: Logger

    private init(serverChannel: any Channel, connections: ConnectionRegistry, logger: Logger) {
        self.serverChannel = serverChannel
        self.localAddress = serverChannel.localAddress!
        self.connections = connections
        self.logger = logger
    }

    /// Binds `host:port` (port 0 picks a free port; see `localAddress`); with `tls`, the port
    /// speaks TLS.
    public static func bind(
        host: String, port: Int, group: any EventLoopGroup, configuration: H2Configuration,
        tls: TLSCredentials? = nil, factory: any HTTPStreamHandlerFactory, logger: Logger
    ) async throws -> H2Server {
        let connections = ConnectionRegistry()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                connections.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        try pipeline.addHandler(NIOSSLServerHandler(context: tls.context))
                    }
                    try pipeline.addHandler(
                        ProtocolDetector(configuration: configuration, factory: factory, logger: logger, behindTLS: tls != nil))
                }
            }
            .bind(host: host, port: port)
            .get()
        return H2Server(serverChannel: channel, connections: connections, logger: logger)
    }

    /// Stops accepting, sends GOAWAY on every connection and waits for their open calls to
    /// finish; whatever is still open after `grace` is closed, which cancels its calls.
    public func shutdown(grace: TimeAmount) async {
        try? await serverChannel.close()
        let open = connections.all
        logger.info("shutting down: \(open.count) open connection(s), grace \(grace.nanoseconds / 1_000_000) ms")
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(H2GracefulShutdownEvent())
        }
        let deadline = NIODeadline.now() + grace
        while !connections.isEmpty, NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        // All at once: closing a TLS connection waits a moment for the peer's close_notify.
        await withTaskGroup(of: Void.self) { group in
            for channel in connections.all {
                group.addTask { try? await channel.close() }
            }
        }
    }
}

/// The accepted connections that are still open, for graceful shutdown.
private final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        channels.withLockedValue { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            channels.withLockedValue { _ = $0.removeValue(forKey: key) }
        }
    }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
    var isEmpty: Bool { channels.withLockedValue { $0.isEmpty } }
}
