/// The end of one call as both surfaces keep it: whether the response ended, why the call was
/// cut short, and the callbacks a handler registered through `ServerCall` (cancellation,
/// outbound drained, delivery). `GRPCServerStream` and `InProcessCall` each own one, on their
/// event loop.
///
/// Methods that end something return the callbacks to run; the owner runs them after its own
/// state is settled, because a callback may call straight back into the call.
struct CallLifecycle {
    typealias CancelCallback = @Sendable (GRPCStatus) -> Void
    typealias DrainedCallback = @Sendable () -> Void
    typealias DeliveryCallback = @Sendable (Bool) -> Void

    /// Set once the status was queued or the call was torn down: nothing more may be written.
    private(set) var responseEnded = false
    /// Why the call ended without the handler finishing it, for late `onCancel` registrations.
    private var cancellation: GRPCStatus?
    private var cancelCallbacks: [CancelCallback] = []
    private var drainedCallbacks: [DrainedCallback] = []
    /// Waiting to learn whether the finished response reached the connection.
    private var deliveryCallbacks: [DeliveryCallback] = []

    /// The response ends with its status (sent by the handler or for it); `false` when it had
    /// already ended. Cancellation callbacks are dropped: the handler is done.
    mutating func endResponse() -> Bool {
        guard !responseEnded else { return false }
        responseEnded = true
        cancelCallbacks = []
        return true
    }

    /// The call ends with an error status the handler did not send (deadline, a request the
    /// transport refused): the callbacks to tell the handler, `nil` when it had already ended.
    mutating func endWithError(_ status: GRPCStatus) -> [CancelCallback]? {
        let callbacks = cancelCallbacks
        guard endResponse() else { return nil }
        cancellation = status
        return callbacks
    }

    /// The call can no longer be written (reset, client gone): the callbacks to tell the handler.
    mutating func tearDown(_ status: GRPCStatus) -> [CancelCallback] {
        responseEnded = true
        cancellation = status
        let callbacks = cancelCallbacks
        cancelCallbacks = []
        drainedCallbacks = []
        return callbacks
    }

    /// The exchange is over: the delivery callbacks, to run with whether it ended cleanly.
    mutating func takeDeliveryCallbacks() -> [DeliveryCallback] {
        defer { deliveryCallbacks = [] }
        return deliveryCallbacks
    }

    mutating func addDeliveryCallback(_ callback: @escaping DeliveryCallback) {
        deliveryCallbacks.append(callback)
    }

    /// Keeps `callback`, or returns the status to run it with at once when the call was already
    /// cut short. A callback registered after the handler ended the call never runs.
    mutating func addCancelCallback(_ callback: @escaping CancelCallback) -> GRPCStatus? {
        if let cancellation { return cancellation }
        if !responseEnded { cancelCallbacks.append(callback) }
        return nil
    }

    /// Keeps `callback` until the outbound queue drains; `false` when it should run at once.
    mutating func addDrainedCallback(_ callback: @escaping DrainedCallback, queuedBytes: Int) -> Bool {
        guard queuedBytes > 0, !responseEnded else { return false }
        drainedCallbacks.append(callback)
        return true
    }

    /// The outbound queue drained: the callbacks waiting for it.
    mutating func takeDrainedCallbacks() -> [DrainedCallback] {
        defer { drainedCallbacks = [] }
        return drainedCallbacks
    }

    var hasDrainedCallbacks: Bool { !drainedCallbacks.isEmpty }
}
