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
final class HTTP1ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let idleTimeout: TimeAmount
    private let factory: any HTTPStreamHandlerFactory
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var exchange: HTTP1Exchange?
    private var idleTimer: Scheduled<Void>?
    private var flushScheduled = false
    /// Inside a read batch: writes are flushed once, at `channelReadComplete`.
    private var inReadBatch = false
    private var needsFlush = false
    private(set) var isShuttingDown = false

    init(idleTimeout: TimeAmount, factory: any HTTPStreamHandlerFactory, logger: Logger) {
        self.idleTimeout = idleTimeout
        self.factory = factory
        self.logger = logger
    }

    // MARK: - ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armIdleTimer()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBatch = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            idleTimer?.cancel()
            idleTimer = nil
            let exchange = HTTP1Exchange(
                connection: self, head: head, eventLoop: context.eventLoop, peerAddress: context.channel.remoteAddress?.ipAddress)
            self.exchange = exchange
            let handler = factory.makeHandler(writer: exchange)
            exchange.handler = handler
            exchange.awaitingContinue = Self.expectsContinue(head)
            handler.receiveHead(Self.fields(of: head), endStream: false)
            if exchange.awaitingContinue, !exchange.headWritten {
                exchange.awaitingContinue = false
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(let bytes):
            exchange?.handler?.receiveBody(bytes)
        case .end:
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
        idleTimer?.cancel()
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
            armIdleTimer()
        }
    }

    private func armIdleTimer() {
        idleTimer?.cancel()
        idleTimer = context?.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [self] in
            guard exchange == nil else { return }
            logger.debug("closing idle HTTP/1.1 connection")
            close()
        }
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

/// The response side of one HTTP/1.1 request, for its `HTTPStreamHandler`.
final class HTTP1Exchange: HTTPStreamWriter {
    /// Weak: an RPC may still hold the exchange after its connection is gone.
    private weak var connection: HTTP1ConnectionHandler?
    let eventLoop: any EventLoop
    private let version: HTTPVersion
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
