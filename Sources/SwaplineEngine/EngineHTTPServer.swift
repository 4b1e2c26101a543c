import NIOCore
import NIOHTTP1
import NIOPosix

/// The engine's HTTP/1.1 listener: routes `GET /health`, `POST /process`, `GET /jobs/{id}`
/// and `GET /outputs/{path}` to `EngineService`. Each request runs in a task of its own, so a
/// FaceFusion run never holds an event loop.
public final class EngineHTTPServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    public let port: Int

    public init(service: EngineService, host: String, port: Int, maxRequestBytes: Int) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(EngineRequestHandler(service: service, maxRequestBytes: maxRequestBytes))
                }
            }
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        self.group = group
        self.port = channel.localAddress?.port ?? port
    }

    /// Waits until the listener closes.
    public func waitUntilClosed() async throws {
        try await channel.closeFuture.get()
    }

    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

private final class EngineRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let service: EngineService
    private let maxRequestBytes: Int
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(service: EngineService, maxRequestBytes: Int) {
        self.service = service
        self.maxRequestBytes = maxRequestBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            tooLarge = false
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maxRequestBytes { tooLarge = true }
        case .body(let chunk):
            guard !tooLarge else { return }
            if body.count + chunk.readableBytes > maxRequestBytes {
                tooLarge = true
                body = []
            } else {
                body += chunk.readableBytesView
            }
        case .end:
            guard let head else { return }
            self.head = nil
            if tooLarge {
                let answer = EngineAnswer.error(413, "the request is larger than the engine's limit of \(maxRequestBytes) bytes")
                write(answer, keepAlive: false, context: context)
                return
            }
            let requestBody = body
            body = []
            respond(to: head, body: requestBody, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, body: [UInt8], context: ChannelHandlerContext) {
        let service = self.service
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        Task {
            let answer = await routeEngineRequest(head, body: body, service: service)
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.write(answer, keepAlive: head.isKeepAlive, context: context)
            }
        }
    }

    private func write(_ answer: EngineAnswer, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders(answer.headers)
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(answer.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: answer.status), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: answer.body)))), promise: nil)
        guard keepAlive else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// The engine's routes; runs in a task, off the event loop.
private func routeEngineRequest(_ head: HTTPRequestHead, body: [UInt8], service: EngineService) async -> EngineAnswer {
    let path = String(head.uri.prefix { $0 != "?" })
    switch (head.method, path) {
    case (.GET, "/health"):
        return await service.health()
    case (.POST, "/process"):
        let host = head.headers.first(name: "host") ?? ""
        // The Host a worker used is its --engine URL's authority: output URLs must carry it.
        guard !host.isEmpty, host.utf8.allSatisfy({ $0.isASCIIAlphanumeric || Array(".-:[]".utf8).contains($0) }) else {
            return .error(400, "the request needs a Host header naming this engine")
        }
        return await service.process(
            contentType: head.headers.first(name: "content-type") ?? "", body: body,
            requestedJobID: head.headers.first(name: EngineService.jobIDHeader), baseURL: "http://\(host)")
    case (.GET, _) where path.hasPrefix("/jobs/"):
        return service.jobStatus(String(path.dropFirst("/jobs/".count)))
    case (.GET, _) where path.hasPrefix("/outputs/"):
        return await service.outputFile(String(path.dropFirst("/outputs/".count)))
    case (_, "/health"), (_, "/process"):
        return .error(405, "\(head.method.rawValue) is not allowed on \(path)")
    default:
        return .error(404, "no route \(path.prefix(200))")
    }
}
