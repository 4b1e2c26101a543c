import Foundation
import H2Transport
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import RPCCore
import SwaplineCore

/// What the engine's listener allows a client: slow or stalled clients are closed, and the
/// connections held open at once are bounded.
public struct EngineListenerLimits: Sendable {
    /// Largest `POST /process` body; a larger one is answered 413.
    public var maxRequestBytes = 256 * 1024 * 1024
    /// Connections open at once; one more is closed as soon as it is accepted.
    public var maxConnections = 256
    /// From a request's first byte until its head is complete (then 408 and close).
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A request body may go this long without a byte (then 408 and close).
    public var bodyProgressTimeout: TimeAmount = .seconds(30)
    /// A connection may wait this long for its next request (then it closes).
    public var idleTimeout: TimeAmount = .seconds(60)
    /// An output being sent may go this long without the client taking a byte (then the
    /// connection closes, and the file with it).
    public var sendTimeout: TimeAmount = .seconds(30)

    public init() {}
}

/// The engine's HTTP/1.1 listener: routes `GET /health`, `POST /process`, `GET /jobs/{id}`
/// and `GET /outputs/{path}` to `EngineService`. Outputs are streamed from disk by H2Transport's
/// `OutputFiles` (the reads on the service's file threads, a piece at a time as the client takes
/// them, never through a symlink out of the output directory). Each other request runs in a task of its own, so a
/// FaceFusion run never holds an event loop; the task is cancelled when its connection closes,
/// which takes a job still waiting for a slot out of the queue.
///
/// Request heads are timed by H2Transport's `HTTP1HeadTimer` (the `swapline serve` HTTP/1.1
/// rules: `idleTimeout` to begin, `headerTimeout` to complete); bodies by `bodyProgressTimeout`.
public final class EngineHTTPServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    public let port: Int

    public init(service: EngineService, host: String, port: Int, limits: EngineListenerLimits) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let outputs = OutputFiles(directory: service.configuration.outputDirectory, threadPool: service.fileThreads)
        let openConnections = NIOLockedValueBox(0)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let admitted = openConnections.withLockedValue { count in
                    guard count < limits.maxConnections else { return false }
                    count += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in openConnections.withLockedValue { $0 -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    let headTimer = HTTP1HeadTimer(idleTimeout: limits.idleTimeout, headerTimeout: limits.headerTimeout)
                    try pipeline.addHandler(headTimer)
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(EngineRequestHandler(service: service, outputs: outputs, limits: limits, headTimer: headTimer))
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
    private let outputs: OutputFiles
    private let limits: EngineListenerLimits
    private let headTimer: HTTP1HeadTimer
    private var head: HTTPRequestHead?
    private var bodyBytes = 0
    private var tooLarge = false
    /// Where the body of the `POST /process` under way goes as it arrives.
    private var spool: BodySpool?
    private var bodyTimer: Scheduled<Void>?
    /// The task answering the current request; cancelled when the connection closes.
    private var answering: Task<Void, Never>?
    /// The output file being sent; cancelled when the connection closes.
    private var outputWriter: EngineOutputWriter?

    init(service: EngineService, outputs: OutputFiles, limits: EngineListenerLimits, headTimer: HTTP1HeadTimer) {
        self.service = service
        self.outputs = outputs
        self.limits = limits
        self.headTimer = headTimer
    }

    func channelInactive(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        spool?.discard()
        spool = nil
        answering?.cancel()
        outputWriter?.connectionClosed()
        outputWriter = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            headTimer.requestHeadReceived()
            self.head = head
            bodyBytes = 0
            tooLarge = false
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limits.maxRequestBytes {
                // Refused before the body is sent: a client waiting for 100 Continue sends none.
                let answer = EngineAnswer.error(413, "the request is larger than the engine's limit of \(limits.maxRequestBytes) bytes")
                self.head = nil
                write(answer, keepAlive: false, context: context)
                return
            }
            if head.version != .http1_0, head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            if head.method == .POST, head.uri.prefix(while: { $0 != "?" }) == "/process" {
                let path = service.configuration.workDirectory + "/upload-" + UUID().uuidString.lowercased()
                spool = BodySpool(path: path, threadPool: outputs.threadPool, channel: context.channel)
            }
            armBodyTimer(context: context)
        case .body(let chunk):
            guard head != nil else { return }
            armBodyTimer(context: context)
            guard !tooLarge else { return }
            bodyBytes += chunk.readableBytes
            if bodyBytes > limits.maxRequestBytes {
                tooLarge = true
                spool?.discard()
                spool = nil
            } else {
                spool?.append(chunk)
            }
        case .end:
            bodyTimer?.cancel()
            bodyTimer = nil
            guard let head else { return }
            self.head = nil
            if tooLarge {
                let answer = EngineAnswer.error(413, "the request is larger than the engine's limit of \(limits.maxRequestBytes) bytes")
                write(answer, keepAlive: false, context: context)
                return
            }
            guard let spool else { return respond(to: head, bodyFile: nil, context: context) }
            self.spool = nil
            spool.finish().assumeIsolated().whenComplete { [self] result in
                // The client may have left while the last pieces were written: nothing to run.
                guard context.channel.isActive else { return spool.discard() }
                guard case .success = result else {
                    spool.discard()
                    return write(.error(500, "the engine cannot store the request body"), keepAlive: false, context: context)
                }
                respond(to: head, bodyFile: spool.path, context: context)
            }
        }
    }

    /// A body that goes `bodyProgressTimeout` without a byte gets 408 and the connection closes.
    private func armBodyTimer(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        let timeout = limits.bodyProgressTimeout
        bodyTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard head != nil else { return }
            head = nil
            spool?.discard()
            spool = nil
            let seconds = Double(timeout.nanoseconds) / 1e9
            write(.error(408, "the request body stalled: no byte for \(seconds) s"), keepAlive: false, context: context)
        }
    }

    /// Answers `head` in a task; `bodyFile`, the spooled body, is removed after.
    private func respond(to head: HTTPRequestHead, bodyFile: String?, context: ChannelHandlerContext) {
        if head.method == .GET, head.uri.hasPrefix("/outputs/") {
            return serveOutput(head, context: context)
        }
        let service = self.service
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        answering = Task {
            let answer = await routeEngineRequest(head, bodyFile: bodyFile, service: service)
            if let bodyFile { try? FileManager.default.removeItem(atPath: bodyFile) }
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.answering = nil
                handler.write(answer, keepAlive: head.isKeepAlive, context: context)
            }
        }
    }

    /// `GET /outputs/{job id}/result.{ext}`: opened on the file threads, then streamed (with
    /// `nosniff`).
    private func serveOutput(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.dropFirst("/outputs/".count).prefix { $0 != "?" })
        guard let components = EngineService.outputFileComponents(path) else {
            return write(.error(404, "no such output"), keepAlive: head.isKeepAlive, context: context)
        }
        let outputs = self.outputs
        outputs.threadPool.runIfActive(eventLoop: context.eventLoop) { outputs.open(components) }
            .assumeIsolated().whenComplete { [self] result in
                guard case .success(let opened?) = result else {
                    return write(.error(404, "no such output"), keepAlive: head.isKeepAlive, context: context)
                }
                guard context.channel.isActive else { return outputs.close(opened) }
                let writer = EngineOutputWriter(context: context, keepAlive: head.isKeepAlive, sendTimeout: limits.sendTimeout) { [self] in
                    outputWriter = nil
                    headTimer.awaitingNextRequest()
                }
                outputWriter = writer
                let contentType = MediaType.forFileExtension(String(components[1].split(separator: ".").last ?? ""))
                writer.send(OutputFileSender(file: opened, files: outputs, writer: writer), contentType: contentType)
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
        headTimer.awaitingNextRequest()
    }
}

/// A request body written to a file as it arrives, a piece after the other on the file
/// threads; the connection stops reading while `maxPiecesWaiting` pieces wait for the disk, so
/// a body is never held in memory whole. Lives on the connection's event loop.
private final class BodySpool {
    static let maxPiecesWaiting = 4
    let path: String
    private let threadPool: NIOThreadPool
    private let channel: any Channel
    /// The file, once the writes queued so far are done.
    private var tail: EventLoopFuture<FileHandle>
    private var piecesWaiting = 0
    private var paused = false

    init(path: String, threadPool: NIOThreadPool, channel: any Channel) {
        self.path = path
        self.threadPool = threadPool
        self.channel = channel
        tail = threadPool.runIfActive(eventLoop: channel.eventLoop) {
            guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
                throw SpoolError()
            }
            return file
        }
    }

    struct SpoolError: Error {}

    func append(_ piece: ByteBuffer) {
        let bytes = Data(piece.readableBytesView)
        let threadPool = self.threadPool
        let eventLoop = channel.eventLoop
        tail = tail.flatMap { file in
            threadPool.runIfActive(eventLoop: eventLoop) {
                try file.write(contentsOf: bytes)
                return file
            }
        }
        piecesWaiting += 1
        if piecesWaiting >= Self.maxPiecesWaiting, !paused {
            paused = true
            channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
        tail.assumeIsolated().whenComplete { [self] _ in
            piecesWaiting -= 1
            if paused, piecesWaiting <= 1 {
                paused = false
                channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            }
        }
    }

    /// Every piece written and the file closed.
    func finish() -> EventLoopFuture<Void> {
        let threadPool = self.threadPool
        let eventLoop = channel.eventLoop
        return tail.flatMap { file in threadPool.runIfActive(eventLoop: eventLoop) { try file.close() } }
    }

    /// The request was abandoned: the file is closed and removed.
    func discard() {
        let path = self.path
        let threadPool = self.threadPool
        tail.whenComplete { result in
            threadPool.submit { _ in
                if case .success(let file) = result { try? file.close() }
                try? FileManager.default.removeItem(atPath: path)
            }
        }
    }
}

/// An output file's response on the engine's connection, for `OutputFileSender`: each write
/// that leaves nothing queued lets the sender read and write its next piece. A client that
/// takes no byte of what is queued for `sendTimeout` has the connection closed. Lives on the
/// connection's event loop.
private final class EngineOutputWriter: HTTPStreamWriter {
    private let context: ChannelHandlerContext
    private let keepAlive: Bool
    private let sendTimeout: TimeAmount
    private let ended: () -> Void
    private var sender: OutputFileSender?
    private(set) var queuedBodyBytes = 0
    /// Runs while bytes are queued; restarted by each write the client took.
    private var stallTimer: Scheduled<Void>?

    init(context: ChannelHandlerContext, keepAlive: Bool, sendTimeout: TimeAmount, ended: @escaping () -> Void) {
        self.context = context
        self.keepAlive = keepAlive
        self.sendTimeout = sendTimeout
        self.ended = ended
    }

    private func restartStallTimer() {
        stallTimer?.cancel()
        stallTimer = nil
        guard queuedBodyBytes > 0 else { return }
        stallTimer = context.eventLoop.assumeIsolated().scheduleTask(in: sendTimeout) { [self] in
            stallTimer = nil
            sender?.cancel()
            reset()
        }
    }

    var eventLoop: any EventLoop { context.eventLoop }
    var peerAddress: String? { nil }

    func send(_ sender: OutputFileSender, contentType: String) {
        self.sender = sender
        sender.start(contentType: contentType)
    }

    func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        var fields = HTTPHeaders(headers.map { ($0.name, $0.value) })
        if !keepAlive { fields.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: fields)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        if endStream { writeEnd(trailers: []) }
    }

    func writeBody(_ bytes: ByteBuffer) {
        let count = bytes.readableBytes
        queuedBodyBytes += count
        if stallTimer == nil { restartStallTimer() }
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(bytes)))).assumeIsolated().whenComplete { [self] _ in
            queuedBodyBytes -= count
            restartStallTimer()
            if queuedBodyBytes == 0 { sender?.drained() }
        }
    }

    func writeEnd(trailers: [HeaderField]) {
        sender = nil
        let channel = context.channel
        let keepAlive = self.keepAlive
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
        ended()
    }

    func reset() {
        sender = nil
        context.close(promise: nil)
    }

    /// The client left mid-file: the sender stops and closes the file.
    func connectionClosed() {
        stallTimer?.cancel()
        stallTimer = nil
        sender?.cancel()
        sender = nil
    }
}

/// The engine's routes; runs in a task, off the event loop.
private func routeEngineRequest(_ head: HTTPRequestHead, bodyFile: String?, service: EngineService) async -> EngineAnswer {
    let path = String(head.uri.prefix { $0 != "?" })
    switch (head.method, path) {
    case (.GET, "/health"):
        return await service.health()
    case (.POST, "/process"):
        guard let bodyFile else { return .error(500, "the request body was not stored") }
        let host = head.headers.first(name: "host") ?? ""
        // The Host a worker used is its --engine URL's authority: output URLs must carry it.
        guard !host.isEmpty, host.utf8.allSatisfy({ $0.isASCIIAlphanumeric || Array(".-:[]".utf8).contains($0) }) else {
            return .error(400, "the request needs a Host header naming this engine")
        }
        var deadline: ContinuousClock.Instant?
        if let timeout = head.headers.first(name: EngineContract.timeoutHeader) {
            guard let ms = Int64(timeout), (1...EngineContract.maxTimeoutMs).contains(ms) else {
                return .error(400, "\(EngineContract.timeoutHeader) must be a number of milliseconds from 1 to \(EngineContract.maxTimeoutMs)")
            }
            deadline = .now + .milliseconds(ms)
        }
        return await service.process(
            contentType: head.headers.first(name: "content-type") ?? "", bodyFile: bodyFile,
            requestedJobID: head.headers.first(name: EngineContract.jobIDHeader), deadline: deadline, baseURL: "http://\(host)")
    case (.GET, _) where path.hasPrefix("/jobs/"):
        return service.jobStatus(String(path.dropFirst("/jobs/".count)))
    case (_, "/health"), (_, "/process"):
        return .error(405, "\(head.method.rawValue) is not allowed on \(path)")
    default:
        return .error(404, "no route \(path.prefix(200))")
    }
}
