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
///
/// At most `maxConnections` connections are open at once: one accepted past that is closed
/// at once, before any byte is read or TLS begins, and open connections go on unaffected.
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
        let refusals = RefusalLog(logger: logger, limit: configuration.maxConnections)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard connections.admit(channel, limit: configuration.maxConnections) else {
                    refusals.note()
                    // A failed initializer makes NIO close the accepted socket.
                    return channel.eventLoop.makeFailedFuture(ConnectionLimitReached())
                }
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

    /// Connections open now, of every protocol (metrics).
    public var openConnectionCount: Int { connections.count }

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

private struct ConnectionLimitReached: Error {}

/// The accepted connections that are still open, for the connection limit and graceful
/// shutdown.
private final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    /// Registers `channel` unless `limit` connections are open already.
    func admit(_ channel: any Channel, limit: Int) -> Bool {
        let key = ObjectIdentifier(channel)
        let admitted = channels.withLockedValue { open in
            guard open.count < limit else { return false }
            open[key] = channel
            return true
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [self] _ in
            channels.withLockedValue { _ = $0.removeValue(forKey: key) }
        }
        return true
    }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
    var count: Int { channels.withLockedValue { $0.count } }
    var isEmpty: Bool { channels.withLockedValue { $0.isEmpty } }
}

/// Logs refused connections at most once per interval, with how many were refused since, so a
/// connection flood cannot flood the log too.
private final class RefusalLog: Sendable {
    private static let interval = TimeAmount.seconds(10)
    private let logger: Logger
    private let limit: Int
    private let state = NIOLockedValueBox<(loggedAt: NIODeadline?, unlogged: Int)>((nil, 0))

    init(logger: Logger, limit: Int) {
        self.logger = logger
        self.limit = limit
    }

    func note() {
        let now = NIODeadline.now()
        let toLog: Int? = state.withLockedValue { state in
            state.unlogged += 1
            if let loggedAt = state.loggedAt, now - loggedAt < Self.interval { return nil }
            defer { state = (now, 0) }
            return state.unlogged
        }
        if let toLog {
            logger.warning("refused \(toLog) connection(s): \(limit) connections are open (--max-connections)")
        }
    }
}
