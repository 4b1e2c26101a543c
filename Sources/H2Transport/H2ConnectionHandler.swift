import Logging
import NIOCore
import RPCCore

/// Sent down a connection's pipeline to begin a graceful shutdown: GOAWAY, finish the
/// streams already open, then close.
public struct H2GracefulShutdownEvent: Sendable {
    public init() {}
}

/// Connection settings of the HTTP/2 server.
public struct H2Configuration: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: nghttp2 advertises no limit unless told.
    public var maxConcurrentStreams: UInt32 = 256
    /// Per-stream and connection receive window.
    public var initialWindowSize: UInt32 = 1 << 20
    /// Largest request header list accepted (nghttp2 advertises it but does not enforce it).
    public var maxHeaderListSize: Int = 16 * 1024
    /// A connection with no open stream for this long (including one that never sent its
    /// preface) is closed, since nghttp2 keeps no timers of its own.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// On a TLS port, a connection whose handshake has not completed this long after it was
    /// accepted is closed (the idle timeout starts after the handshake).
    public var tlsHandshakeTimeout: TimeAmount = .seconds(10)
    /// Stream resets the server may send on one connection in a burst, and per second after
    /// that. nghttp2 1.52 limits resets a client sends (rapid reset) but not the ones a client
    /// provokes the server into sending ("MadeYouReset", CVE-2025-8671); past this budget the
    /// connection is closed with GOAWAY ENHANCE_YOUR_CALM.
    public var serverResetBurst: Double = 1000
    public var serverResetsPerSecond: Double = 33
    /// Most connections open at once on the listener, both protocols and TLS included; past
    /// it, new connections are closed as soon as they are accepted.
    public var maxConnections: Int = 1024
    /// A connection must have sent its first request head (HTTP/1.1) or its preface and
    /// SETTINGS (HTTP/2) this long after it was accepted (after the TLS handshake on a TLS port).
    public var prefaceTimeout: TimeAmount = .seconds(10)
    /// A request head, once begun, must be complete within this time (HTTP/1.1 header lines,
    /// HTTP/2 HEADERS and its CONTINUATION frames).
    public var headerTimeout: TimeAmount = .seconds(10)
    /// A request body that is not finished may go this long without a byte arriving.
    public var bodyProgressTimeout: TimeAmount = .seconds(30)
    /// Output queued for a peer that reads nothing (TCP not writable, or an HTTP/2 window that
    /// stays closed) may wait this long before the connection is closed.
    public var sendProgressTimeout: TimeAmount = .seconds(30)

    public init() {}
}

/// Drives one nghttp2 session from a NIO channel: bytes in go to `nghttp2_session_mem_recv`,
/// frames out are collected with `nghttp2_session_mem_send` and written once per read batch
/// (or once per event-loop tick for responses produced outside a read).
final class H2ConnectionHandler: ChannelInboundHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: H2Configuration
    private let factory: any HTTPStreamHandlerFactory
    private let logger: Logger
    private var session: NGHTTP2Session?
    private var context: ChannelHandlerContext?
    private var streams: [Int32: H2Stream] = [:]
    private var inReadBatch = false
    private var flushScheduled = false
    /// Streams whose queued body was fully handed to nghttp2 during the current flush.
    private var drainedStreams: [H2Stream] = []
    private var idleTimer: Scheduled<Void>?
    private var isShuttingDown = false
    /// Token bucket of server-sent resets (see `H2Configuration.serverResetBurst`).
    private lazy var resetBudget = configuration.serverResetBurst
    private var resetBudgetRefilledAt = NIODeadline.now()
    private var exceededResetBudget = false

    let eventLoop: any EventLoop
    /// The client's IP address, for its streams (`HTTPStreamWriter.peerAddress`).
    private(set) var peerAddress: String?

    init(configuration: H2Configuration, factory: any HTTPStreamHandlerFactory, eventLoop: any EventLoop, logger: Logger) {
        self.configuration = configuration
        self.factory = factory
        self.eventLoop = eventLoop
        self.logger = logger
    }

    // MARK: - ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peerAddress = context.channel.remoteAddress?.ipAddress
        do {
            session = try NGHTTP2Session(
                settings: .init(
                    maxConcurrentStreams: configuration.maxConcurrentStreams,
                    initialWindowSize: configuration.initialWindowSize,
                    maxHeaderListSize: UInt32(configuration.maxHeaderListSize)),
                delegate: self)
        } catch {
            logger.error("cannot create HTTP/2 session: \(error)")
            context.close(promise: nil)
            return
        }
        armIdleTimer()
        if context.channel.isActive { flush() }
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeAllStreams()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session else { return }
        inReadBatch = true
        do {
            try session.receive(unwrapInboundIn(data))
        } catch {
            // nghttp2 has queued a GOAWAY naming the protocol error; send it, then close.
            logger.debug("closing HTTP/2 connection: \(error)")
            inReadBatch = false
            flush()
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBatch = false
        flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flush() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        closeAllStreams()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is H2GracefulShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        beginGracefulShutdown()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/2 connection error: \(error)")
        context.close(promise: nil)
    }

    // MARK: - Operations for streams

    func submitResponse(streamID: Int32, status: Int, headers: [HeaderField], hasBody: Bool) {
        do {
            try session?.submitResponse(streamID: streamID, status: status, headers: headers, hasBody: hasBody)
        } catch {
            logger.debug("cannot submit response on stream \(streamID): \(error)")
            resetStream(streamID: streamID)
        }
        outboundChanged()
    }

    func resumeData(streamID: Int32) {
        session?.resumeData(streamID: streamID)
    }

    func resetStream(streamID: Int32) {
        session?.resetStream(streamID: streamID, errorCode: 2)  // INTERNAL_ERROR
        outboundChanged()
    }

    func noteDrained(_ stream: H2Stream) {
        drainedStreams.append(stream)
    }

    /// Something was queued for sending: flush now unless a read batch will flush anyway.
    func outboundChanged() {
        guard !inReadBatch, !flushScheduled else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            flush()
        }
    }

    // MARK: - NGHTTP2SessionDelegate

    func sessionBeganRequest(streamID: Int32) {
        streams[streamID] = H2Stream(streamID: streamID, connection: self)
        idleTimer?.cancel()
        idleTimer = nil
    }

    func sessionReceivedHeader(streamID: Int32, name: String, value: String) -> Bool {
        guard let stream = streams[streamID] else { return true }
        stream.requestHeaderListSize += name.utf8.count + value.utf8.count + 32
        guard stream.requestHeaderListSize <= configuration.maxHeaderListSize else { return false }
        stream.requestFields.append(HeaderField(name, value))
        return true
    }

    func sessionReceivedRequestHead(streamID: Int32, endStream: Bool) {
        guard let stream = streams[streamID] else { return }
        let handler = factory.makeHandler(writer: stream)
        stream.handler = handler
        let fields = stream.requestFields
        stream.requestFields = []
        handler.receiveHead(fields, endStream: endStream)
    }

    func sessionReceivedData(streamID: Int32, bytes: ByteBuffer) {
        streams[streamID]?.handler?.receiveBody(bytes)
    }

    func sessionReceivedEndStream(streamID: Int32) {
        streams[streamID]?.handler?.receiveEnd()
    }

    func sessionClosedStream(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.markClosed()
        // nghttp2 closes a stream with NO_ERROR once its final frame is serialized.
        stream.handler?.streamClosed(cleanly: errorCode == 0)
        // The handler holds the stream as its writer: let go so neither keeps the other alive.
        stream.handler = nil
        if streams.isEmpty { armIdleTimer() }
    }

    func sessionSentReset(streamID: Int32) {
        let now = NIODeadline.now()
        let elapsedSeconds = Double((now - resetBudgetRefilledAt).nanoseconds) / 1e9
        resetBudgetRefilledAt = now
        resetBudget = min(configuration.serverResetBurst, resetBudget + elapsedSeconds * configuration.serverResetsPerSecond) - 1
        // Acted on after the current send pass (this runs inside nghttp2_session_mem_send).
        if resetBudget < 0 { exceededResetBudget = true }
    }

    func sessionReadBody(streamID: Int32, maxLength: Int) -> NGHTTP2Session.BodyRead {
        guard let stream = streams[streamID] else { return .end(ByteBuffer(), trailers: []) }
        return stream.readBody(maxLength: maxLength)
    }

    // MARK: - Internals

    private func flush() {
        guard let context, let session, context.channel.isActive else { return }
        var wrote = false
        while context.channel.isWritable {
            var output = context.channel.allocator.buffer(capacity: 16 * 1024)
            do {
                try session.drainOutput(into: &output, limit: 256 * 1024)
            } catch {
                logger.debug("HTTP/2 send failed: \(error)")
                context.close(promise: nil)
                return
            }
            guard output.readableBytes > 0 else { break }
            context.write(wrapOutboundOut(output), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
        if !drainedStreams.isEmpty {
            let drained = drainedStreams
            drainedStreams = []
            for stream in drained where !stream.isClosed { stream.handler?.bodyDrained() }
        }
        if exceededResetBudget {
            exceededResetBudget = false
            logger.warning("closing an HTTP/2 connection that provoked too many stream resets")
            session.submitGoAway(errorCode: NGHTTP2Session.enhanceYourCalm)
            var goAway = context.channel.allocator.buffer(capacity: 64)
            try? session.drainOutput(into: &goAway, limit: 64 * 1024)
            context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
            context.close(promise: nil)
            return
        }
        if !session.isAlive {
            context.close(promise: nil)
        }
    }

    private func beginGracefulShutdown() {
        guard !isShuttingDown, let session else { return }
        isShuttingDown = true
        session.submitShutdownNotice()
        flush()
        // A round trip later, refuse streams the client opened before it saw the notice.
        eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(200)) { [self] in
            self.session?.submitGoAway()
            flush()
        }
    }

    private func armIdleTimer() {
        idleTimer?.cancel()
        idleTimer = eventLoop.assumeIsolated().scheduleTask(in: configuration.idleTimeout) { [self] in
            guard streams.isEmpty, let context else { return }
            logger.debug("closing idle HTTP/2 connection")
            session?.submitGoAway()
            flush()
            context.close(promise: nil)
        }
    }

    private func closeAllStreams() {
        let open = streams.values
        streams = [:]
        for stream in open {
            stream.markClosed()
            stream.handler?.streamClosed(cleanly: false)
            stream.handler = nil
        }
    }
}
