import NIOCore

/// A handler's view of one RPC: what was asked (method, metadata, caller, deadline) and how to
/// answer. The answer goes out as response parts (`RPCResponsePart`) to whichever surface the
/// call came from: a gRPC stream encodes them, an in-process call (the REST shim) takes the
/// messages as values.
///
/// Every method may be called from any thread; work hops to the call's event loop, in call
/// order. Once the call has finished (by the handler, its deadline, or the client's
/// cancellation) further sends are ignored, and `finish` reports `false` to its callback.
public final class ServerCall: Sendable {
    /// The method, the request metadata, the surface and the caller.
    public let context: ServerContext
    /// When the client stops waiting (from `grpc-timeout`), if it said.
    public let deadline: NIODeadline?
    public let eventLoop: any EventLoop
    private let sink: NIOLoopBound<any ServerCallSink>

    package init(context: ServerContext, deadline: NIODeadline?, sink: any ServerCallSink, eventLoop: any EventLoop) {
        self.context = context
        self.deadline = deadline
        self.eventLoop = eventLoop
        self.sink = NIOLoopBound(sink, eventLoop: eventLoop)
    }

    /// `/package.Service/Method`.
    public var path: String { context.method.path }
    /// The request's metadata (gRPC metadata, or the REST request's headers).
    public var requestMetadata: Metadata { context.metadata }
    /// Who is calling, when an interceptor authenticated the call.
    public var caller: CallerIdentity? { context.caller }

    /// Sends response headers now rather than with the first message.
    public func sendInitialMetadata(_ metadata: Metadata) {
        onLoop { _ = $0.write(.metadata(metadata)) }
    }

    /// Queues one response message.
    public func send(_ message: some RPCMessage) {
        let part = RPCResponsePart.message(message)
        onLoop { _ = $0.write(part) }
    }

    /// Queues one response message given as its serialized bytes.
    public func send(_ message: ByteBuffer) {
        send(SerializedMessage(message))
    }

    /// Ends the call with `status`. `onComplete` learns whether the whole response reached
    /// the client, so a caller that handed something out (a task lease) can take it back
    /// when the client reset the stream or went away before it was written.
    public func finish(_ status: GRPCStatus, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        onLoop { sink in
            let accepted = sink.write(.status(status, trailers))
            Self.report(accepted, on: sink, to: onComplete)
        }
    }

    /// Sends the one message of a unary call and ends it with OK; `onComplete` as for `finish`.
    public func respond(_ message: some RPCMessage, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        let part = RPCResponsePart.message(message)
        onLoop { sink in
            let accepted = sink.write(part) && sink.write(.status(.ok, trailers))
            Self.report(accepted, on: sink, to: onComplete)
        }
    }

    /// Sends the one message of a unary call, given as its serialized bytes, and ends it with
    /// OK; `onComplete` as for `finish`.
    public func respond(_ message: ByteBuffer, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        respond(SerializedMessage(message), trailers: trailers, onComplete: onComplete)
    }

    private static func report(_ accepted: Bool, on sink: any ServerCallSink, to onComplete: (@Sendable (Bool) -> Void)?) {
        guard let onComplete else { return }
        if accepted {
            sink.addDeliveryCallback(onComplete)
        } else {
            onComplete(false)
        }
    }

    /// The status sent if the deadline passes before the handler finishes, in place of a bare
    /// `DEADLINE_EXCEEDED`, so the client learns what became of its request.
    public func setDeadlineStatus(_ status: GRPCStatus) {
        onLoop { $0.setDeadlineStatus(status) }
    }

    /// Runs `body` once if the call ends without the handler finishing it: the client
    /// cancelled (RST_STREAM, or a REST client went away), the deadline passed, or the
    /// connection closed. Runs at once when that already happened.
    public func onCancel(_ body: @escaping @Sendable (GRPCStatus) -> Void) {
        onLoop { $0.addCancelCallback(body) }
    }

    /// Runs `body` once everything sent so far has left the call's queue for the connection:
    /// streaming handlers use it to send at the pace the client reads.
    public func whenOutboundDrained(_ body: @escaping @Sendable () -> Void) {
        onLoop { $0.addDrainedCallback(body) }
    }

    private func onLoop(_ body: @escaping @Sendable (any ServerCallSink) -> Void) {
        if eventLoop.inEventLoop {
            body(sink.value)
        } else {
            let sink = self.sink
            eventLoop.execute { body(sink.value) }
        }
    }
}
