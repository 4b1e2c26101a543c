import NIOCore

/// One RPC of a router called in process, by a surface that is not gRPC (the REST shim): the
/// request goes to the method's handler as a value, after the same routing and interceptors
/// as a gRPC call, and the handler's response parts come back as values. Nothing is
/// serialized on the way, in either direction, for methods registered with their types.
///
/// The call plays the surface's part for its handler: the caller's outbound queue stands in
/// for a stream's (so a streaming handler is paced by the real client), and the caller
/// reports when its own response was delivered or lost, which the handler hears as it would
/// hear a gRPC stream closing or being reset. There is no deadline: REST requests carry none,
/// and handlers that need one apply their own (ProcessSync's 120 s).
///
/// Confined to `eventLoop`.
public final class InProcessCall: ServerCallSink {
    public let eventLoop: any EventLoop
    private let queuedBytes: () -> Int
    private let onMessage: (any RPCMessage) -> Void
    private let onEnd: (GRPCStatus, Metadata) -> Void
    private var lifecycle = CallLifecycle()

    /// Prepares a call; `start` runs it.
    ///
    /// - Parameters:
    ///   - queuedBytes: the caller's response bytes not yet handed to its connection.
    ///   - onMessage: each response message, as the handler sent it.
    ///   - onEnd: the final status and its trailing metadata (e.g. `retry-after`), once.
    public init(
        eventLoop: any EventLoop, queuedBytes: @escaping () -> Int, onMessage: @escaping (any RPCMessage) -> Void,
        onEnd: @escaping (GRPCStatus, Metadata) -> Void
    ) {
        self.eventLoop = eventLoop
        self.queuedBytes = queuedBytes
        self.onMessage = onMessage
        self.onEnd = onEnd
    }

    /// Calls `method` of `router` with one request message and the request's metadata. The
    /// handler may answer before this returns, so the caller keeps the call before starting it.
    public func start<Request, Response>(
        router: RPCRouter, method: RPCMethod<Request, Response>, request: Request, metadata: Metadata,
        surface: CallSurface = .rest, connection: ConnectionID? = nil, peerAddress: String? = nil
    ) {
        let routed: RoutedMethod
        switch router.route(method.path) {
        case .success(let found): routed = found
        case .failure(let status): return endWithError(status)
        }
        var context = ServerContext(
            method: routed.descriptor, metadata: metadata, surface: surface, connection: connection, peerAddress: peerAddress)
        if let refusal = router.interceptors.run(&context) { return endWithError(refusal) }
        let call = ServerCall(context: context, deadline: nil, sink: self, eventLoop: eventLoop)
        if let typed = routed.typed as? TypedHandler<Request> {
            return typed.body(request, call)
        }
        // A method registered with a raw handler takes bytes.
        var bytes = ByteBufferAllocator().buffer(capacity: 256)
        request.serialize(into: &bytes)
        switch routed.handler {
        case .singleRequest(let body):
            body(bytes, call)
        case .requestStream(let makeObserver):
            let observer = makeObserver(call)
            observer.onMessage(bytes)
            observer.onEnd()
        }
    }

    /// The caller's queue drained: a streaming handler may send the next message.
    public func drained() {
        guard lifecycle.hasDrainedCallbacks, queuedBytes() == 0 else { return }
        for callback in lifecycle.takeDrainedCallbacks() { callback() }
    }

    /// The caller's response is over: `delivered` when all of it reached its connection, `false`
    /// when its client went away first (the handler is then cancelled, or takes back what the
    /// response handed out).
    public func close(delivered: Bool) {
        for callback in lifecycle.takeDeliveryCallbacks() { callback(delivered) }
        guard !lifecycle.responseEnded else { return }
        let status = GRPCStatus(.cancelled, "the client went away")
        for callback in lifecycle.tearDown(status) { callback(status) }
    }

    private func endWithError(_ status: GRPCStatus) {
        guard let callbacks = lifecycle.endWithError(status) else { return }
        onEnd(status, Metadata())
        for callback in callbacks { callback(status) }
    }

    // MARK: - ServerCallSink (the handler's ServerCall)

    package func write(_ part: RPCResponsePart) -> Bool {
        switch part {
        case .metadata:
            // REST answers carry no gRPC metadata.
            return !lifecycle.responseEnded
        case .message(let message):
            guard !lifecycle.responseEnded else { return false }
            onMessage(message)
            return true
        case .status(let status, let trailers):
            guard lifecycle.endResponse() else { return false }
            onEnd(status, trailers)
            return true
        }
    }

    package func setDeadlineStatus(_ status: GRPCStatus) {}

    package func addDeliveryCallback(_ callback: @escaping @Sendable (Bool) -> Void) {
        lifecycle.addDeliveryCallback(callback)
    }

    package func addCancelCallback(_ callback: @escaping @Sendable (GRPCStatus) -> Void) {
        if let cancellation = lifecycle.addCancelCallback(callback) { callback(cancellation) }
    }

    package func addDrainedCallback(_ callback: @escaping @Sendable () -> Void) {
        if !lifecycle.addDrainedCallback(callback, queuedBytes: queuedBytes()) { callback() }
    }
}
