import NIOCore

/// A handler's view of one RPC: what was asked (path, metadata, deadline) and how to answer.
///
/// Every method may be called from any thread; work hops to the call's event loop, in call
/// order. Once the call has finished (by the handler, its deadline, or the client's
/// cancellation) further sends are ignored, and `finish` reports `false` to its callback.
public final class ServerCall: Sendable {
    /// `/package.Service/Method`.
    public let path: String
    /// The request's non-pseudo headers, including application metadata.
    public let requestMetadata: Metadata
    /// When the client stops waiting (from `grpc-timeout`), if it said.
    public let deadline: NIODeadline?
    public let eventLoop: any EventLoop
    private let stream: NIOLoopBound<GRPCServerStream>

    init(path: String, requestMetadata: Metadata, deadline: NIODeadline?, stream: GRPCServerStream, eventLoop: any EventLoop) {
        self.path = path
        self.requestMetadata = requestMetadata
        self.deadline = deadline
        self.eventLoop = eventLoop
        self.stream = NIOLoopBound(stream, eventLoop: eventLoop)
    }

    /// Sends response headers now rather than with the first message.
    public func sendInitialMetadata(_ metadata: Metadata) {
        onLoop { $0.sendInitialMetadata(metadata) }
    }

    /// Queues one response message.
    public func send(_ message: GRPCFramedMessage) {
        onLoop { $0.sendMessage(message) }
    }

    /// Queues one response message given as protobuf bytes without the gRPC prefix.
    public func send(_ message: ByteBuffer) {
        send(GRPCFramedMessage(message: message))
    }

    /// Ends the call with `status`. `onComplete` learns whether the whole response reached
    /// the connection, so a caller that handed something out (a task lease) can take it back
    /// when the client reset the stream or went away before it was written.
    public func finish(_ status: GRPCStatus, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        onLoop { stream in
            let accepted = stream.finish(status, trailers: trailers)
            Self.report(accepted, on: stream, to: onComplete)
        }
    }

    /// Sends the one message of a unary call (protobuf bytes without the gRPC prefix) and ends
    /// it with OK; `onComplete` as for `finish`.
    public func respond(_ message: ByteBuffer, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        respond(GRPCFramedMessage(message: message), trailers: trailers, onComplete: onComplete)
    }

    /// Sends the one message of a unary call and ends it with OK; `onComplete` as for `finish`.
    public func respond(_ message: GRPCFramedMessage, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        onLoop { stream in
            let accepted = stream.sendMessage(message) && stream.finish(.ok, trailers: trailers)
            Self.report(accepted, on: stream, to: onComplete)
        }
    }

    private static func report(_ accepted: Bool, on stream: GRPCServerStream, to onComplete: (@Sendable (Bool) -> Void)?) {
        guard let onComplete else { return }
        if accepted {
            stream.addDeliveryCallback(onComplete)
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
    /// cancelled (RST_STREAM), the deadline passed, or the connection closed. Runs at once when
    /// that already happened.
    public func onCancel(_ body: @escaping @Sendable (GRPCStatus) -> Void) {
        onLoop { $0.addCancelCallback(body) }
    }

    /// Runs `body` once everything sent so far has left the call's queue for the connection:
    /// streaming handlers use it to send at the pace the client reads.
    public func whenOutboundDrained(_ body: @escaping @Sendable () -> Void) {
        onLoop { $0.addDrainedCallback(body) }
    }

    private func onLoop(_ body: @escaping @Sendable (GRPCServerStream) -> Void) {
        if eventLoop.inEventLoop {
            body(stream.value)
        } else {
            let stream = self.stream
            eventLoop.execute { body(stream.value) }
        }
    }
}
