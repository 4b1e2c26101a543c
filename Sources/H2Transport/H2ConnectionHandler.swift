import Logging
import NIOCore
import RPCCore

/// Sent down a connection's pipeline to begin a graceful shutdown: GOAWAY, finish the
/// streams already open, then close.
public struct H2GracefulShutdownEvent: Sendable {
    public init() {}
}

/// Connection settings of the HTTP/2 server (and of the listener and HTTP/1.1 where a field
/// says so). `docs/security.md` lists the limits with their flags.
public struct H2Configuration: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: nghttp2 advertises no limit unless told.
    public var maxConcurrentStreams: UInt32 = 256
    /// Per-stream and connection receive window. Windows reopen as the request bytes are
    /// handed to the stream's handler, so a connection holds at most this much request body
    /// that its handlers have not taken.
    public var initialWindowSize: UInt32 = 1 << 20
    /// Largest request header list accepted (nghttp2 advertises it but does not enforce it).
    public var maxHeaderListSize: Int = 16 * 1024
    /// A connection on which no frame arrives and nothing is sent for this long is closed,
    /// whether or not streams are open (nghttp2 keeps no timers of its own).
    public var idleTimeout: TimeAmount = .seconds(300)
    /// On a TLS port, a connection whose handshake has not completed this long after it was
    /// accepted is closed (the preface timeout starts after the handshake).
    public var tlsHandshakeTimeout: TimeAmount = .seconds(10)
    /// Stream resets the server may queue on one connection in a burst, and per second after
    /// that. nghttp2 1.52 limits resets a client sends (rapid reset) but not the ones a client
    /// provokes the server into sending ("MadeYouReset", CVE-2025-8671); past this budget the
    /// connection is closed with GOAWAY ENHANCE_YOUR_CALM.
    public var serverResetBurst: Double = 1000
    public var serverResetsPerSecond: Double = 33
    /// Empty DATA frames without END_STREAM a client may send on one connection in a burst,
    /// and per second after that; past it, GOAWAY ENHANCE_YOUR_CALM (nghttp2 1.52 accepts any
    /// number of them, each costing a parse and a callback).
    public var emptyDataFrameBurst: Double = 1000
    public var emptyDataFramesPerSecond: Double = 100
    /// Most connections open at once on the listener, both protocols and TLS included; past
    /// it, new connections are closed as soon as they are accepted.
    public var maxConnections: Int = H2Configuration.defaultMaxConnections
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
    /// Response body bytes one HTTP/2 stream may have queued and not yet sent; a stream that
    /// goes past it is reset (its handler writes faster than the client reads).
    public var maxQueuedBytesPerStream: Int = 8 * 1024 * 1024
    /// Response body bytes all streams of one HTTP/2 connection may have queued; a connection
    /// that goes past it is closed with GOAWAY ENHANCE_YOUR_CALM.
    public var maxQueuedBytesPerConnection: Int = 32 * 1024 * 1024

    public init() {}

    /// Three quarters of the process's open-file limit (RLIMIT_NOFILE, soft), at least 64 and at
    /// most 16,384: the rest is left for the task store, result files and outgoing connections.
    public static let defaultMaxConnections: Int = {
        let openFiles = FileDescriptorLimit.current
        return min(16_384, max(64, openFiles / 4 * 3))
    }()
}

/// Drives one nghttp2 session from a NIO channel: bytes in go to `nghttp2_session_mem_recv`,
/// frames out are collected with `nghttp2_session_mem_send` and written once per read batch
/// (or once per event-loop tick for responses produced outside a read).
///
/// nghttp2 has no timers: a watchdog task enforces the preface, header, body progress, send
/// progress and idle timeouts of `H2Configuration`, checking every quarter of the shortest.
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
    /// Abandoned requests whose response end is queued: reset (NO_ERROR) after it.
    private var streamsToResetAfterResponse: [H2Stream] = []
    /// Request body bytes handed to handlers during the current receive, per stream, to return
    /// to the peer's windows once nghttp2 is done with the bytes.
    private var consumedBytes: [(streamID: Int32, count: Int)] = []
    private var watchdog: Scheduled<Void>?
    private var isShuttingDown = false
    private var receivedSettings = false
    private let startedAt: NIODeadline
    /// Last frame received or bytes written, for the idle timeout.
    private var lastActivity: NIODeadline
    /// Last time the socket took bytes (or was writable), for the send progress timeout.
    private var lastWriteProgress: NIODeadline
    /// The header block in progress (HEADERS without END_HEADERS yet) and when it began.
    private var openHeaderBlock: (streamID: Int32, since: NIODeadline)?
    /// Response body bytes queued on all streams.
    private var queuedBodyBytes = 0
    private var resetBudget: EventBudget
    private var emptyDataBudget: EventBudget
    /// Why this connection is being cut off with GOAWAY ENHANCE_YOUR_CALM after the current
    /// receive or send pass (set from inside nghttp2's callbacks, acted on outside them).
    private var abuse: String?

    let eventLoop: any EventLoop
    /// Given to every call of this connection (per-connection limits count by it).
    let connectionID = ConnectionID.next()
    /// The client's IP address, for its streams (`HTTPStreamWriter.peerAddress`).
    private(set) var peerAddress: String?

    init(configuration: H2Configuration, factory: any HTTPStreamHandlerFactory, eventLoop: any EventLoop, logger: Logger) {
        self.configuration = configuration
        self.factory = factory
        self.eventLoop = eventLoop
        self.logger = logger
        let now = eventLoop.now
        startedAt = now
        lastActivity = now
        lastWriteProgress = now
        resetBudget = EventBudget(burst: configuration.serverResetBurst, perSecond: configuration.serverResetsPerSecond, now: now)
        emptyDataBudget = EventBudget(
            burst: configuration.emptyDataFrameBurst, perSecond: configuration.emptyDataFramesPerSecond, now: now)
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
        startWatchdog()
        if context.channel.isActive { flush() }
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watchdog?.cancel()
        closeAllStreams()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let session else { return }
        inReadBatch = true
        do {
            try session.receive(unwrapInboundIn(data))
        } catch {
            // nghttp2 has queued a GOAWAY naming the protocol error (or the flood); send it,
            // then close.
            logger.debug("closing HTTP/2 connection: \(error)")
            inReadBatch = false
            flush()
            context.close(promise: nil)
            return
        }
        for (streamID, count) in consumedBytes { session.consume(streamID: streamID, length: count) }
        consumedBytes.removeAll(keepingCapacity: true)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBatch = false
        flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            lastWriteProgress = eventLoop.now
            flush()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        watchdog?.cancel()
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

    func resetStream(streamID: Int32, errorCode: UInt32 = NGHTTP2Session.internalError) {
        session?.resetStream(streamID: streamID, errorCode: errorCode)
        countQueuedReset()
        outboundChanged()
    }

    func noteDrained(_ stream: H2Stream) {
        drainedStreams.append(stream)
    }

    func resetOnceResponseSent(_ stream: H2Stream) {
        streamsToResetAfterResponse.append(stream)
        outboundChanged()
    }

    /// Keeps the count of queued response bytes and enforces both outbound bounds.
    func queuedBodyBytesChanged(by delta: Int, on stream: H2Stream) {
        queuedBodyBytes += delta
        guard delta > 0 else { return }
        if stream.queuedBodyBytes > configuration.maxQueuedBytesPerStream {
            logger.debug(
                "resetting HTTP/2 stream \(stream.streamID): more than \(configuration.maxQueuedBytesPerStream) response bytes queued for a client that does not take them")
            stream.markClosed()
            resetStream(streamID: stream.streamID)
        } else if queuedBodyBytes > configuration.maxQueuedBytesPerConnection {
            cutOff("more than \(configuration.maxQueuedBytesPerConnection) response bytes queued on one connection")
        }
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

    func sessionBeganHeaderBlock(streamID: Int32, isRequest: Bool) {
        openHeaderBlock = (streamID, eventLoop.now)
        if isRequest { streams[streamID] = H2Stream(streamID: streamID, connection: self) }
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
        let count = bytes.readableBytes
        if let stream = streams[streamID], !stream.requestAbandoned {
            stream.lastReceivedAt = eventLoop.now
            stream.handler?.receiveBody(bytes)
        }
        // Handed on (or dropped): the window may reopen for as much.
        consumedBytes.append((streamID, count))
    }

    func sessionReceivedEndStream(streamID: Int32) {
        guard let stream = streams[streamID] else { return }
        stream.awaitsRequestBody = false
        if !stream.requestAbandoned { stream.handler?.receiveEnd() }
    }

    func sessionReceivedFrame(_ frame: NGHTTP2Session.ReceivedFrame) {
        let now = eventLoop.now
        lastActivity = now
        switch frame.kind {
        case .settings:
            receivedSettings = true
        case .headers:
            openHeaderBlock = nil
        case .data:
            if frame.length == 0, !frame.endStream, !emptyDataBudget.take(now: now) {
                cutOff("too many empty DATA frames")
            }
        case .other:
            break
        }
    }

    func sessionClosedStream(streamID: Int32, errorCode: UInt32) {
        if openHeaderBlock?.streamID == streamID { openHeaderBlock = nil }
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.markClosed()
        // nghttp2 closes a stream with NO_ERROR once its final frame is serialized.
        stream.handler?.streamClosed(cleanly: errorCode == 0)
        // The handler holds the stream as its writer: let go so neither keeps the other alive.
        stream.handler = nil
    }

    func sessionQueuedReset(streamID: Int32) {
        countQueuedReset()
    }

    func sessionReadBody(streamID: Int32, maxLength: Int) -> NGHTTP2Session.BodyRead {
        guard let stream = streams[streamID] else { return .end(ByteBuffer(), trailers: []) }
        return stream.readBody(maxLength: maxLength)
    }

    // MARK: - Internals

    /// Counted when queued rather than when sent, so that a client that reads nothing cannot
    /// pile up resets unnoticed.
    private func countQueuedReset() {
        if !resetBudget.take(now: eventLoop.now) { cutOff("too many stream resets provoked") }
    }

    /// Marks the connection for GOAWAY ENHANCE_YOUR_CALM and closing at the end of the
    /// current pass (this may run inside nghttp2's callbacks).
    private func cutOff(_ reason: String) {
        guard abuse == nil else { return }
        abuse = reason
        outboundChanged()
    }

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
            if !streamsToResetAfterResponse.isEmpty {
                // The response ends are queued ahead of these resets, so they go out first.
                let finished = streamsToResetAfterResponse
                streamsToResetAfterResponse = []
                for stream in finished where !stream.isClosed {
                    resetStream(streamID: stream.streamID, errorCode: NGHTTP2Session.noError)
                }
                if output.readableBytes == 0 { continue }
            }
            guard output.readableBytes > 0 else { break }
            context.write(wrapOutboundOut(output), promise: nil)
            wrote = true
        }
        if wrote {
            context.flush()
            lastActivity = eventLoop.now
            lastWriteProgress = lastActivity
        }
        if !drainedStreams.isEmpty {
            let drained = drainedStreams
            drainedStreams = []
            for stream in drained where !stream.isClosed { stream.handler?.bodyDrained() }
        }
        if let abuse {
            logger.warning("closing an HTTP/2 connection from \(context.remoteAddress.map { "\($0)" } ?? "?"): \(abuse)")
            self.abuse = nil
            closeNow(context: context, session: session, goAwayError: NGHTTP2Session.enhanceYourCalm)
            return
        }
        if !session.isAlive {
            context.close(promise: nil)
        }
    }

    /// Sends GOAWAY (past whatever output is stuck) and closes at once.
    private func closeNow(context: ChannelHandlerContext, session: NGHTTP2Session, goAwayError: UInt32) {
        session.submitGoAway(errorCode: goAwayError)
        var goAway = context.channel.allocator.buffer(capacity: 64)
        try? session.drainOutput(into: &goAway, limit: 64 * 1024)
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        context.close(promise: nil)
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

    private func startWatchdog() {
        let shortest = [
            configuration.prefaceTimeout, configuration.headerTimeout, configuration.bodyProgressTimeout,
            configuration.sendProgressTimeout, configuration.idleTimeout,
        ].min()!
        scheduleWatchdog(every: .nanoseconds(min(max(shortest.nanoseconds / 4, 10_000_000), 1_000_000_000)))
    }

    private func scheduleWatchdog(every interval: TimeAmount) {
        watchdog = eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            enforceTimeouts()
            if context?.channel.isActive == true { scheduleWatchdog(every: interval) }
        }
    }

    /// One watchdog round: ends whatever has overstayed its timeout.
    private func enforceTimeouts() {
        guard let context, let session, context.channel.isActive else { return }
        let now = eventLoop.now
        if !receivedSettings {
            if now - startedAt >= configuration.prefaceTimeout {
                logger.debug("closing an HTTP/2 connection that sent no SETTINGS in time")
                context.close(promise: nil)
            }
            return
        }
        if let block = openHeaderBlock, now - block.since >= configuration.headerTimeout {
            logger.debug("closing an HTTP/2 connection whose header block on stream \(block.streamID) did not end in time")
            closeNow(context: context, session: session, goAwayError: NGHTTP2Session.enhanceYourCalm)
            return
        }
        var outputStuck = !context.channel.isWritable && now - lastWriteProgress >= configuration.sendProgressTimeout
        for stream in streams.values {
            if let since = stream.sendWaitingSince, now - since >= configuration.sendProgressTimeout { outputStuck = true }
            if stream.awaitsRequestBody, !stream.requestAbandoned, stream.handler != nil,
                now - stream.lastReceivedAt >= configuration.bodyProgressTimeout
            {
                abandonRequest(of: stream)
            }
        }
        if outputStuck {
            logger.debug("closing an HTTP/2 connection whose peer takes no output")
            closeNow(context: context, session: session, goAwayError: NGHTTP2Session.enhanceYourCalm)
            return
        }
        if now - lastActivity >= configuration.idleTimeout {
            logger.debug("closing idle HTTP/2 connection (\(streams.count) open stream(s))")
            closeNow(context: context, session: session, goAwayError: 0)
        }
    }

    /// The request body stopped arriving: the handler may answer (a gRPC status), then the
    /// stream is reset; with no answer, it is reset at once with CANCEL.
    private func abandonRequest(of stream: H2Stream) {
        let endWasQueued = stream.responseEndQueued
        stream.requestAbandoned = true
        let milliseconds = configuration.bodyProgressTimeout.nanoseconds / 1_000_000
        stream.handler?.requestAbandoned(reason: "the request body stalled: no bytes for \(milliseconds) ms")
        if stream.isClosed { return }
        if endWasQueued {
            resetOnceResponseSent(stream)
        } else if !stream.isEndingResponse {
            stream.markClosed()
            resetStream(streamID: stream.streamID, errorCode: NGHTTP2Session.cancel)
        }
        // Otherwise the stream asks for its reset once its response end is queued.
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
