import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// An HTTP/1.1 server on 127.0.0.1 (and [::1], on the same port, when the machine has IPv6
/// loopback) that answers each path with a scripted response and records every request it
/// gets: tests of outbound fetches check both what the client got and that nothing arrived
/// where nothing should.
public final class ScriptedHTTPServer: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]
        /// Sends the head, then one body byte per this interval, forever (a peer that dribbles).
        public var dribble: TimeAmount?

        public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = [], dribble: TimeAmount? = nil) {
            self.status = status
            self.headers = headers
            self.body = body
            self.dribble = dribble
        }

        public static func redirect(_ status: Int = 302, to location: String) -> Response {
            Response(status: status, headers: [("Location", location)])
        }
    }

    public struct Request: Sendable, Equatable {
        public var method: String
        public var uri: String
        public var host: String
        public var contentType: String
        public var body: [UInt8]
    }

    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channels: [any Channel]
    private let routes: NIOLockedValueBox<[String: Response]>
    private let log = NIOLockedValueBox<[Request]>([])
    public let port: Int
    /// Whether [::1] listens too.
    public let hasIPv6: Bool

    /// `routes` maps a request target (path and query) to its response; others get 404.
    public init(routes: [String: Response] = [:]) async throws {
        let routes = NIOLockedValueBox(routes)
        let log = self.log
        self.routes = routes
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(ScriptedRouteHandler(routes: routes, log: log))
                }
            }
        let first = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        port = first.localAddress?.port ?? 0
        if let second = try? await bootstrap.bind(host: "::1", port: port).get() {
            channels = [first, second]
            hasIPv6 = true
        } else {
            channels = [first]
            hasIPv6 = false
        }
    }

    public func url(_ target: String) -> String { "http://127.0.0.1:\(port)\(target)" }

    public func setRoute(_ target: String, _ response: Response) {
        routes.withLockedValue { $0[target] = response }
    }

    /// Every request so far, in arrival order.
    public var requests: [Request] { log.withLockedValue { $0 } }

    public func stop() async {
        for channel in channels { try? await channel.close() }
        try? await group.shutdownGracefully()
    }
}

private final class ScriptedRouteHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: NIOLockedValueBox<[String: ScriptedHTTPServer.Response]>
    private let log: NIOLockedValueBox<[ScriptedHTTPServer.Request]>
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(routes: NIOLockedValueBox<[String: ScriptedHTTPServer.Response]>, log: NIOLockedValueBox<[ScriptedHTTPServer.Request]>) {
        self.routes = routes
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let chunk):
            body += chunk.readableBytesView
        case .end:
            guard let head else { return }
            let request = ScriptedHTTPServer.Request(
                method: head.method.rawValue, uri: head.uri, host: head.headers.first(name: "host") ?? "",
                contentType: head.headers.first(name: "content-type") ?? "", body: body)
            log.withLockedValue { $0.append(request) }
            let response = routes.withLockedValue { $0[head.uri] } ?? ScriptedHTTPServer.Response(status: 404)
            answer(response, context: context)
        }
    }

    private func answer(_ response: ScriptedHTTPServer.Response, context: ChannelHandlerContext) {
        var headers = HTTPHeaders(response.headers)
        if response.dribble == nil { headers.add(name: "Content-Length", value: String(response.body.count)) }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        guard let interval = response.dribble else {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        context.flush()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            let (handler, context) = bound.value
            guard context.channel.isActive else { return task.cancel() }
            context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: [0x78])))), promise: nil)
        }
    }
}
