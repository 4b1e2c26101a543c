import Logging
import NIOCore
import NIOHTTP1
import RPCCore

/// Serves one HTTP/1.1 connection through the same `HTTPStreamHandler` seam as an HTTP/2
/// stream. NIOHTTP1 parses and encodes the messages (chunked bodies included) and its
/// pipelining handler holds a pipelined request back until the previous response has ended,
/// so there is one exchange at a time.
///
/// Keep-alive follows the request (`Connection`, HTTP version); `Expect: 100-continue` is
/// answered with `100 Continue` unless the handler already gave its final answer to the head,
/// in which case the connection closes after it (the client may never send the body we would
/// otherwise have to skip). A graceful shutdown closes an idle connection at once and a busy
/// one after its response.
///
/// Request smuggling: llhttp (NIOHTTP1's parser, strict mode) already answers 400 and closes
/// for `Content-Length` with `Transfer-Encoding`, repeated `Content-Length`s (equal ones too),
/// obs-fold, bad chunk sizes, bare CR or LF and NUL in the request line or a header. This
/// handler adds the framing llhttp lets through: a `Transfer-Encoding` other than `chunked`
/// alone (`gzip, chunked`), and an HTTP/1.1 request with no `Host` or with several.
///
/// Timeouts (`H2Configuration`): `HTTP1HeadTimer` times the wait for each request head
/// (`idleTimeout`, then `headerTimeout` from its first byte); here, a request body may go
/// `bodyProgressTimeout` without a byte, and response bytes waiting for a peer that does not
/// read may wait `sendProgressTimeout`. A timed-out request that has no response yet gets
/// 408; then the connection closes.
final class HTTP1ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let configuration: H2Configuration
    private let factory: any HTTPStreamHandlerFactory
    private let logger: Logger
    /// Sits in front of the decoder (see `install`); told when a head arrives and when the
    /// connection waits for the next one.
    let headTimer: HTTP1HeadTimer
    private var context: ChannelHandlerContext?
    private var exchange: HTTP1Exchange?
    /// Closes the connection when the unfinished request body stalls.
    private var bodyTimer: Scheduled<Void>?
    /// Closes the connection when queued response bytes stop draining.
    private var sendTimer: Scheduled<Void>?
    private var bodyWritesInFlight = 0
    /// A request was refused or timed out: the connection closes once the answer is written,
    /// and whatever else arrives is dropped.
    private var closing = false
    private var flushScheduled = false
    /// Inside a read batch: writes are flushed once, at `channelReadComplete`.
    private var inReadBatch = false
    private var needsFlush = false
    private(set) var isShuttingDown = false

    init(configuration: H2Configuration, factory: any HTTPStreamHandlerFactory, logger: Logger) {
        self.configuration = configuration
        self.factory = factory
        self.logger = logger
        self.headTimer = HTTP1HeadTimer(idleTimeout: configuration.idleTimeout, headerTimeout: configuration.headerTimeout)
    }

    /// Adds the HTTP/1.1 handlers to the end of `pipeline`: the head timer, NIOHTTP1's
    /// encoder, decoder, pipelining and error handlers, then the connection handler.
    static func install(
        on pipeline: ChannelPipeline.SynchronousOperations, configuration: H2Configuration,
        factory: any HTTPStreamHandlerFactory, logger: Logger
    ) throws {
        let handler = HTTP1ConnectionHandler(configuration: configuration, factory: factory, logger: logger)
        try pipeline.addHandler(handler.headTimer)
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try pipeline.addHandler(handler)
    }

    // MARK: - ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        sendTimer?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBatch = true
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            headTimer.requestHeadReceived()
            if let problem = Self.framingProblem(head) {
                logger.debug("refusing an HTTP/1.1 request: \(problem)")
                return answerAndClose(.badRequest, problem, version: head.version)
            }
            let exchange = HTTP1Exchange(
                connection: self, head: head, eventLoop: context.eventLoop, peerAddress: context.channel.remoteAddress?.ipAddress)
            self.exchange = exchange
            armBodyTimer()
            let handler = factory.makeHandler(writer: exchange)
            exchange.handler = handler
            exchange.awaitingContinue = Self.expectsContinue(head)
            handler.receiveHead(Self.fields(of: head), endStream: false)
            if exchange.awaitingContinue, !exchange.headWritten {
                exchange.awaitingContinue = false
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(let bytes):
            armBodyTimer()
            exchange?.handler?.receiveBody(bytes)
        case .end:
            bodyTimer?.cancel()
            bodyTimer = nil
            guard let exchange else { return }
            exchange.requestEnded = true
            exchange.handler?.receiveEnd()
            finishIfDone(exchange)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBatch = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        sendTimer?.cancel()
        if let exchange {
            self.exchange = nil
            exchange.connectionLost()
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is H2GracefulShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        isShuttingDown = true
        if exchange == nil { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/1.1 connection error: \(error)")
        context.close(promise: nil)
    }

    // MARK: - Operations for the exchange

    func write(_ part: HTTPServerResponsePart, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if case .body = part, let promise {
            bodyWriteQueued(promise.futureResult)
        }
        context.write(wrapOutboundOut(part), promise: promise)
        // One flush per read batch, or per event-loop tick for writes made outside a read.
        if inReadBatch {
            needsFlush = true
            return
        }
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            self.context?.flush()
        }
    }

    func close() {
        context?.close(promise: nil)
    }

    /// The exchange's response was fully written.
    func responseEnded(_ exchange: HTTP1Exchange) {
        if !exchange.keepAlive {
            close()
            return
        }
        finishIfDone(exchange)
    }

    // MARK: - Internals

    private func finishIfDone(_ exchange: HTTP1Exchange) {
        guard exchange === self.exchange, exchange.requestEnded, exchange.responseWritten else { return }
        self.exchange = nil
        if isShuttingDown {
            close()
        } else {
            headTimer.awaitingNextRequest()
        }
    }

    /// Writes a short plain-text answer with `connection: close`, flushes it and closes: at
    /// once, since the parser must not go on to the bytes behind a refused head (NIOHTTP1 would
    /// answer its own 400 to those). The exchange under way, if any, is told its connection is
    /// lost.
    private func answerAndClose(_ status: HTTPResponseStatus, _ message: String, version: HTTPVersion) {
        closing = true
        bodyTimer?.cancel()
        if let exchange {
            self.exchange = nil
            exchange.connectionLost()
        }
        let body = ByteBuffer(string: message + "\n")
        let headers = HTTPHeaders([
            ("content-type", "text/plain; charset=utf-8"), ("content-length", String(body.readableBytes)), ("connection", "close"),
        ])
        guard let context else { return }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }

    private func armBodyTimer() {
        bodyTimer?.cancel()
        bodyTimer = context?.eventLoop.assumeIsolated().scheduleTask(in: configuration.bodyProgressTimeout) { [self] in
            guard let exchange, !exchange.requestEnded else { return }
            logger.debug("closing an HTTP/1.1 connection whose request body stalled")
            if exchange.headWritten {
                close()
            } else {
                let seconds = Double(configuration.bodyProgressTimeout.nanoseconds) / 1e9
                answerAndClose(.requestTimeout, "request body stalled: no byte for \(seconds) s", version: exchange.version)
            }
        }
    }

    /// Each body write that completes is progress: the timer restarts while others wait and
    /// stops when none does.
    private func bodyWriteQueued(_ written: EventLoopFuture<Void>) {
        bodyWritesInFlight += 1
        if sendTimer == nil { armSendTimer() }
        written.assumeIsolated().whenComplete { [self] _ in
            bodyWritesInFlight -= 1
            sendTimer?.cancel()
            sendTimer = nil
            if bodyWritesInFlight > 0 { armSendTimer() }
        }
    }

    private func armSendTimer() {
        sendTimer = context?.eventLoop.assumeIsolated().scheduleTask(in: configuration.sendProgressTimeout) { [self] in
            logger.debug("closing an HTTP/1.1 connection whose peer does not read its response")
            close()
        }
    }

    /// Why a request head's framing is refused (400), or `nil`.
    static func framingProblem(_ head: HTTPRequestHead) -> String? {
        let transferEncodings = head.headers["transfer-encoding"]
        if !transferEncodings.isEmpty,
            transferEncodings.count > 1 || transferEncodings[0].lowercased() != "chunked"
        {
            return "unsupported Transfer-Encoding '\(transferEncodings.joined(separator: ", "))': only 'chunked' is accepted"
        }
        let hosts = head.headers["host"].count
        if head.version.major == 1, head.version.minor >= 1, hosts == 0 {
            return "Host header missing (required since HTTP/1.1)"
        }
        if hosts > 1 { return "more than one Host header" }
        return nil
    }

    private static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        head.version != .http1_0 && head.version != .http0_9 && head.headers["expect"].contains { $0.lowercased() == "100-continue" }
    }

    /// The head as an HTTP/2 handler would see it: pseudo-headers first, lower-case names.
    private static func fields(of head: HTTPRequestHead) -> [HeaderField] {
        var fields = [
            HeaderField(":method", head.method.rawValue), HeaderField(":scheme", "http"), HeaderField(":path", head.uri),
        ]
        if let host = head.headers.first(name: "host") { fields.append(HeaderField(":authority", host)) }
        for (name, value) in head.headers where name.lowercased() != "host" {
            fields.append(HeaderField(name.lowercased(), value))
        }
        return fields
    }
}

/// Times the wait for each HTTP/1.1 request head, in front of the decoder where the bytes of
/// a head that is not complete yet are visible: `idleTimeout` until the first byte of the next
/// request (then the connection closes silently), `headerTimeout` from that byte until the head
/// is complete (then the client gets 408, written here as bytes since no request exists for
/// NIOHTTP1's pipelining handler to answer, and the connection closes). A pipelined head that
/// arrived partly during the previous exchange is timed by `idleTimeout`. Public for other
/// HTTP/1.1 listeners (`swapline engine`'s): add it in front of NIOHTTP1's decoder.
public final class HTTP1HeadTimer: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private static let timedOutAnswer: String = {
        let body = "request head not completed in time\n"
        return "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            + "content-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
    }()

    private let idleTimeout: TimeAmount
    private let headerTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var awaitingHead = true
    private var headBegun = false

    public init(idleTimeout: TimeAmount, headerTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.headerTimeout = headerTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        awaitingNextRequest()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if awaitingHead, !headBegun {
            headBegun = true
            arm(headerTimeout, answering: true)
        }
        context.fireChannelRead(data)
    }

    /// The decoder produced a complete head: its body and response are timed elsewhere.
    public func requestHeadReceived() {
        awaitingHead = false
        headBegun = false
        timer?.cancel()
        timer = nil
    }

    /// The previous exchange is over: the next request has `idleTimeout` to begin.
    public func awaitingNextRequest() {
        awaitingHead = true
        headBegun = false
        arm(idleTimeout, answering: false)
    }

    /// `answering`: a request has begun, so it gets 408 before the close.
    private func arm(_ delay: TimeAmount, answering: Bool) {
        timer?.cancel()
        timer = context?.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard let context else { return }
            guard answering else { return context.close(promise: nil) }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: Self.timedOutAnswer))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}

/// The response side of one HTTP/1.1 request, for its `HTTPStreamHandler`.
final class HTTP1Exchange: HTTPStreamWriter {
    /// Weak: an RPC may still hold the exchange after its connection is gone.
    private weak var connection: HTTP1ConnectionHandler?
    let eventLoop: any EventLoop
    let version: HTTPVersion
    private let isHeadRequest: Bool
    var handler: (any HTTPStreamHandler)?
    var keepAlive: Bool
    /// The client waits for `100 Continue` before sending its body; a final answer given
    /// instead closes the connection, as the body may or may not follow.
    var awaitingContinue = false
    var requestEnded = false
    private(set) var headWritten = false
    private(set) var responseWritten = false
    private var endRequested = false
    private var closed = false
    private(set) var queuedBodyBytes = 0
    let peerAddress: String?

    init(connection: HTTP1ConnectionHandler, head: HTTPRequestHead, eventLoop: any EventLoop, peerAddress: String?) {
        self.connection = connection
        self.eventLoop = eventLoop
        self.peerAddress = peerAddress
        self.version = head.version
        self.isHeadRequest = head.method == .HEAD
        self.keepAlive = head.isKeepAlive
    }

    func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        guard !closed, !headWritten, let connection else { return }
        headWritten = true
        if connection.isShuttingDown || awaitingContinue { keepAlive = false }
        var fields = HTTPHeaders()
        for field in headers where !field.name.hasPrefix(":") {
            fields.add(name: field.name, value: field.value)
        }
        if endStream, !isHeadRequest, !fields.contains(name: "content-length"), status >= 200, status != 204, status != 304 {
            fields.add(name: "content-length", value: "0")
        }
        if !keepAlive {
            fields.replaceOrAdd(name: "connection", value: "close")
        } else if version == .http1_0 {
            fields.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        connection.write(.head(HTTPResponseHead(version: version, status: .init(statusCode: status), headers: fields)), promise: nil)
        if endStream { writeEnd(trailers: []) }
    }

    func writeBody(_ bytes: ByteBuffer) {
        // A response to HEAD has a head only (its content-length tells the size).
        guard !closed, headWritten, !endRequested, !isHeadRequest, bytes.readableBytes > 0 else { return }
        let count = bytes.readableBytes
        queuedBodyBytes += count
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenSuccess { [self] in
            queuedBodyBytes -= count
            if queuedBodyBytes == 0, !closed { handler?.bodyDrained() }
        }
        send(.body(.byteBuffer(bytes)), promise: promise)
    }

    func writeEnd(trailers: [HeaderField]) {
        guard !closed, headWritten, !endRequested else { return }
        endRequested = true
        var trailerFields: HTTPHeaders?
        if !trailers.isEmpty {
            trailerFields = HTTPHeaders(trailers.map { ($0.name, $0.value) })
        }
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            guard !closed else { return }
            switch result {
            case .success:
                closed = true
                responseWritten = true
                let handler = self.handler
                self.handler = nil
                handler?.streamClosed(cleanly: true)
                connection?.responseEnded(self)
            case .failure:
                connectionLost()
            }
        }
        send(.end(trailerFields), promise: promise)
    }

    func reset() {
        guard !closed else { return }
        connection?.close()
    }

    private func send(_ part: HTTPServerResponsePart, promise: EventLoopPromise<Void>) {
        if let connection {
            connection.write(part, promise: promise)
        } else {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }

    /// The connection closed before the response was written.
    func connectionLost() {
        guard !closed else { return }
        closed = true
        let handler = self.handler
        self.handler = nil
        handler?.streamClosed(cleanly: false)
    }
}
