import NIOCore

/// Limits and defaults of the gRPC layer.
public struct GRPCServerConfiguration: Sendable {
    /// Largest request message accepted; larger ones get `RESOURCE_EXHAUSTED`.
    public var maxReceiveMessageSize: Int = 4 * 1024 * 1024
    /// Longest a unary call may run: one without grpc-timeout, or with a longer one, ends
    /// DEADLINE_EXCEEDED after this. Five minutes leaves room for ProcessSync's own two-minute
    /// wait without a deadline and for FetchTask's long polls. Calls that stream responses
    /// (`MethodDescriptor.streamsResponses`) are not bounded by it.
    public var maxUnaryDeadline: TimeAmount = .seconds(300)

    public init(maxReceiveMessageSize: Int = 4 * 1024 * 1024) {
        self.maxReceiveMessageSize = maxReceiveMessageSize
    }
}

/// gRPC over one HTTP exchange: checks the request head, deframes messages, enforces the
/// deadline and the message rules, dispatches to the routed handler, and writes headers,
/// framed messages and trailers (or a Trailers-Only response) back through the transport.
///
/// Lives on its connection's event loop; handlers reach it through `ServerCall`.
public final class GRPCServerStream: HTTPStreamHandler, ServerCallSink {
    private enum Phase {
        case awaitingHead
        /// Unary or server streaming: the one message is held until the request ends.
        case collectingSingle(@Sendable (ByteBuffer, ServerCall) -> Void, received: ByteBuffer?)
        case streaming(RequestObserver)
        /// An interceptor refused the call: its request is read and dropped, and the status
        /// answered once the request has ended, as any other refusal of a whole request is
        /// (some clients do not read a response that ends before they finished sending).
        case refused(GRPCStatus)
        /// The handler has everything it will get; later request bytes are ignored.
        case requestComplete
    }

    private let router: RPCRouter
    private let maxUnaryDeadline: TimeAmount
    private let writer: any HTTPStreamWriter
    private var phase: Phase = .awaitingHead
    private var deframer: GRPCMessageDeframer
    private var call: ServerCall?
    private var deadlineTimer: Scheduled<Void>?
    private var lifecycle = CallLifecycle()
    private var headSent = false
    /// What the client hears when its deadline passes; handlers may say more (a task id).
    private var deadlineStatus = GRPCStatus(.deadlineExceeded, "deadline exceeded")
    /// For `router.callObserver`: when the head arrived (read only when there is an observer)
    /// and the routed method's index.
    private var startedAt: NIODeadline?
    private var methodIndex: Int?

    public init(router: RPCRouter, configuration: GRPCServerConfiguration, writer: any HTTPStreamWriter) {
        self.router = router
        self.maxUnaryDeadline = configuration.maxUnaryDeadline
        self.writer = writer
        self.deframer = GRPCMessageDeframer(maxMessageSize: configuration.maxReceiveMessageSize)
    }

    // MARK: - HTTPStreamHandler

    public func receiveHead(_ fields: [HeaderField], endStream: Bool) {
        if router.callObserver != nil { startedAt = .now() }
        var method = "", path = "", contentType = "", timeout: String?
        var metadata = Metadata()
        for field in fields {
            switch field.name {
            case ":method": method = field.value
            case ":path": path = field.value
            case "content-type": contentType = field.value
            case "grpc-timeout": timeout = field.value
            default:
                // nghttp2 refuses upper-case header names, so no need to lower-case them again.
                if !field.name.hasPrefix(":") { metadata.appendLowercased(field.name, field.value) }
            }
        }
        guard Self.isGRPCContentType(contentType) else {
            // Not gRPC: a plain HTTP status, so that non-gRPC clients do not read a 200 as success.
            reject(httpStatus: 415, message: "unsupported content-type '\(contentType)': expected application/grpc")
            return
        }
        guard method == "POST" else {
            reject(httpStatus: 405, message: "gRPC requires POST, got \(method)")
            return
        }
        var timeLimit: TimeAmount?
        if let timeout {
            guard let parsed = GRPCTimeout(headerValue: timeout) else {
                endCall(GRPCStatus(.invalidArgument, "malformed grpc-timeout '\(timeout)'"))
                return
            }
            timeLimit = .nanoseconds(parsed.nanoseconds)
        }
        let routed: RoutedMethod
        switch router.route(path) {
        case .success(let found): routed = found
        case .failure(let status):
            endCall(status)
            return
        }
        methodIndex = routed.index
        var context = ServerContext(
            method: routed.descriptor, metadata: metadata, surface: .grpc, connection: writer.connectionID,
            peerAddress: writer.peerAddress)
        if let refusal = router.interceptors.run(&context) {
            phase = .refused(refusal)
            if endStream { receiveEnd() }
            return
        }
        var serverLimit: TimeAmount?
        if case .singleRequest = routed.handler, !routed.descriptor.streamsResponses {
            timeLimit = timeLimit.map { min($0, maxUnaryDeadline) }
            serverLimit = maxUnaryDeadline
        }
        // The handler sees the client's deadline (capped), not the server's maximum: without
        // one it keeps its own default waits (ProcessSync's).
        let call = ServerCall(
            context: context, deadline: timeLimit.map { .now() + $0 }, sink: self, eventLoop: writer.eventLoop)
        self.call = call
        if let timeLimit {
            armDeadline(after: timeLimit)
        } else if let serverLimit {
            ServerDeadlineQueue.on(writer.eventLoop).add(self, deadline: writer.eventLoop.now + serverLimit)
        }
        switch routed.handler {
        case .singleRequest(let body):
            phase = .collectingSingle(body, received: nil)
        case .requestStream(let makeObserver):
            phase = .streaming(makeObserver(call))
        }
        if endStream { receiveEnd() }
    }

    public func receiveBody(_ bytes: ByteBuffer) {
        switch phase {
        case .collectingSingle, .streaming: break
        case .awaitingHead, .refused, .requestComplete: return
        }
        deframer.append(bytes)
        do {
            while let message = try deframer.next() {
                guard deliver(message) else { return }
            }
        } catch {
            endCall(error.status)
        }
    }

    public func receiveEnd() {
        let current = phase
        phase = .requestComplete
        do {
            try deframer.finish()
        } catch {
            endCall(error.status)
            return
        }
        switch current {
        case .collectingSingle(let body, let received):
            guard let message = received, let call else {
                endCall(GRPCStatus(.unimplemented, "a unary request needs exactly one message, got none"))
                return
            }
            body(message, call)
        case .streaming(let observer):
            observer.onEnd()
        case .refused(let status):
            endCall(status)
        case .awaitingHead, .requestComplete:
            break
        }
    }

    public func bodyDrained() {
        guard lifecycle.hasDrainedCallbacks, writer.queuedBodyBytes == 0 else { return }
        for callback in lifecycle.takeDrainedCallbacks() { callback() }
    }

    public func requestAbandoned(reason: String) {
        endCall(GRPCStatus(.deadlineExceeded, reason))
    }

    public func streamClosed(cleanly: Bool) {
        call = nil  // the ServerCall holds this stream: break the cycle once the exchange is over
        for callback in lifecycle.takeDeliveryCallbacks() { callback(cleanly) }
        guard !lifecycle.responseEnded else { return }
        cancelCall(GRPCStatus(.cancelled, "the client cancelled the call"))
    }

    /// Feeds a whole single-message request (protobuf bytes, no gRPC prefix) as a transport
    /// would: head, framed body, end. For callers that are not a network transport.
    public func receiveRequest(path: String, message: ByteBuffer, extraHeaders: [HeaderField] = []) {
        receiveHead(
            [HeaderField(":method", "POST"), HeaderField(":path", path), Self.contentTypeField] + extraHeaders,
            endStream: false)
        receiveBody(GRPCFramedMessage(message: message).buffer)
        receiveEnd()
    }

    // MARK: - ServerCallSink (the handler's ServerCall, on the event loop)

    package func write(_ part: RPCResponsePart) -> Bool {
        switch part {
        case .metadata(let metadata):
            guard !lifecycle.responseEnded, !headSent else { return false }
            sendHead(extra: metadata)
            return true
        case .message(let message):
            guard !lifecycle.responseEnded else { return false }
            if !headSent { sendHead(extra: Metadata()) }
            writer.writeBody(GRPCFramedMessage { message.serialize(into: &$0) }.buffer)
            return true
        case .status(let status, let trailers):
            return finish(status, trailers: trailers)
        }
    }

    /// Ends the call; `false` when it had already ended.
    private func finish(_ status: GRPCStatus, trailers: Metadata) -> Bool {
        guard lifecycle.endResponse() else { return false }
        writeStatus(status, trailers: trailers)
        observeEnd(status.code)
        return true
    }

    /// Tells the router's observer how the call ended; every path that ends a gRPC call once
    /// (the handler's status, an error status, a teardown) calls it.
    private func observeEnd(_ code: GRPCStatus.Code) {
        guard let startedAt, let observer = router.callObserver else { return }
        observer.callEnded(methodIndex: methodIndex, code: code, startedAt: startedAt)
    }

    private func writeStatus(_ status: GRPCStatus, trailers: Metadata) {
        phase = .requestComplete
        deadlineTimer?.cancel()
        deadlineTimer = nil
        var fields = status == .ok ? Self.okStatusFields : Self.statusFields(status)
        for entry in trailers where Metadata.isApplicationMetadata(entry.name) {
            fields.append(HeaderField(entry.name, entry.value))
        }
        if headSent {
            writer.writeEnd(trailers: fields)
        } else {
            // Trailers-Only: one HEADERS frame carrying the status, with END_STREAM.
            headSent = true
            writer.writeHead(status: 200, headers: Self.responseHeadFields + fields, endStream: true)
        }
    }

    package func setDeadlineStatus(_ status: GRPCStatus) {
        deadlineStatus = status
    }

    /// Runs `callback` with `true` once the finished response has been handed to the
    /// connection in full, or `false` if the stream is reset or lost first (even within the
    /// same read batch that produced the response).
    package func addDeliveryCallback(_ callback: @escaping @Sendable (Bool) -> Void) {
        lifecycle.addDeliveryCallback(callback)
    }

    package func addCancelCallback(_ callback: @escaping @Sendable (GRPCStatus) -> Void) {
        if let cancellation = lifecycle.addCancelCallback(callback) { callback(cancellation) }
    }

    package func addDrainedCallback(_ callback: @escaping @Sendable () -> Void) {
        if !lifecycle.addDrainedCallback(callback, queuedBytes: writer.queuedBodyBytes) { callback() }
    }

    // MARK: - Internals

    private static let contentTypeField = HeaderField("content-type", "application/grpc")
    // Shared arrays for the common case, so an ordinary call allocates no header lists.
    private static let responseHeadFields = [contentTypeField, HeaderField("grpc-accept-encoding", "identity")]
    private static let okStatusFields = [HeaderField("grpc-status", "0")]

    static func isGRPCContentType(_ value: String) -> Bool {
        guard value.hasPrefix("application/grpc") else { return false }
        let rest = value.dropFirst("application/grpc".count)
        return rest.isEmpty || rest.hasPrefix("+proto") || rest.hasPrefix(";")
    }

    private static func statusFields(_ status: GRPCStatus) -> [HeaderField] {
        var fields = [HeaderField("grpc-status", String(status.code.rawValue))]
        if !status.message.isEmpty {
            fields.append(HeaderField("grpc-message", GRPCMessageEncoding.encode(status.message)))
        }
        return fields
    }

    private func sendHead(extra metadata: Metadata) {
        headSent = true
        var fields = Self.responseHeadFields
        for entry in metadata where Metadata.isApplicationMetadata(entry.name) {
            fields.append(HeaderField(entry.name, entry.value))
        }
        writer.writeHead(status: 200, headers: fields, endStream: false)
    }

    /// Hands one deframed message on; `false` when the call ended because of it.
    private func deliver(_ message: ByteBuffer) -> Bool {
        switch phase {
        case .collectingSingle(let body, let received):
            if received != nil {
                endCall(GRPCStatus(.unimplemented, "a unary request needs exactly one message, got two or more"))
                return false
            }
            phase = .collectingSingle(body, received: message)
            return true
        case .streaming(let observer):
            observer.onMessage(message)
            return !lifecycle.responseEnded
        case .awaitingHead, .refused, .requestComplete:
            return false
        }
    }

    /// Ends the call with an error status and tells the handler, if one runs, to stop.
    private func endCall(_ status: GRPCStatus) {
        guard let callbacks = lifecycle.endWithError(status) else { return }
        writeStatus(status, trailers: Metadata())
        observeEnd(status.code)
        for callback in callbacks { callback(status) }
    }

    /// The stream can no longer be written (reset or closed): tell the handler.
    private func cancelCall(_ status: GRPCStatus) {
        phase = .requestComplete
        deadlineTimer?.cancel()
        deadlineTimer = nil
        observeEnd(status.code)
        for callback in lifecycle.tearDown(status) { callback(status) }
    }

    private func reject(httpStatus: Int, message: String) {
        _ = lifecycle.endResponse()
        phase = .requestComplete
        writer.writeHead(
            status: httpStatus,
            headers: [
                HeaderField("content-type", "text/plain; charset=utf-8"),
                HeaderField("grpc-status", String(GRPCStatus.Code.unknown.rawValue)),
                HeaderField("grpc-message", GRPCMessageEncoding.encode(message)),
            ],
            endStream: true)
    }

    /// Relative to the loop's clock rather than an absolute `NIODeadline`, so loops with a
    /// virtual clock (tests) behave like real ones.
    /// The server's maximum for unary calls passed (`ServerDeadlineQueue`); nothing when the
    /// call has ended.
    func serverDeadlinePassed() {
        endCall(deadlineStatus)
    }

    private func armDeadline(after timeLimit: TimeAmount) {
        deadlineTimer = writer.eventLoop.assumeIsolated().scheduleTask(in: timeLimit) { [self] in
            deadlineTimer = nil
            endCall(deadlineStatus)
        }
    }
}
