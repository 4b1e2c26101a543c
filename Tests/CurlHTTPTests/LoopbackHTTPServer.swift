import NIOCore
import NIOHTTP1
import NIOPosix

/// A loopback HTTP/1.1 server (NIO) with the routes the tests need.
final class LoopbackHTTPServer: Sendable {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: any Channel

    init() async throws {
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(RouteHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var port: Int { channel.localAddress?.port ?? 0 }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

private final class RouteHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            respond(to: head, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        switch (request.method, request.uri) {
        case (.GET, "/hello"):
            headers.add(name: "X-Test", value: "yes")
            send(.ok, headers, ByteBuffer(string: "hello"), context: context)
        case (.GET, "/unsized"):
            // Chunked, so no Content-Length: only counting bytes can stop this.
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok))), promise: nil)
            for _ in 0..<64 {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: UInt8(ascii: "x"), count: 1024)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case (.GET, "/slow"):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .seconds(5)) {
                let (handler, context) = loopBound.value
                handler.send(.noContent, HTTPHeaders(), ByteBuffer(), context: context)
            }
        case (.POST, _):
            headers.add(name: "X-Content-Type", value: request.headers.first(name: "content-type") ?? "")
            send(.ok, headers, body, context: context)
        default:
            send(.notFound, headers, ByteBuffer(), context: context)
        }
    }

    private func send(_ status: HTTPResponseStatus, _ headers: HTTPHeaders, _ body: ByteBuffer, context: ChannelHandlerContext) {
        var headers = headers
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
