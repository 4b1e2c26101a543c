/// What a handler sends back, in order: `metadata` at most once and first (without it, the
/// first message or the status sends the default headers), any number of `message`s, then
/// `status` exactly once and last. The same parts reach every surface: the gRPC stream frames
/// and encodes them, an in-process call (the REST shim) takes the messages as values.
public enum RPCResponsePart: Sendable {
    /// Response headers sent ahead of the first message.
    case metadata(Metadata)
    /// One response message.
    case message(any RPCMessage)
    /// The outcome, with trailing metadata.
    case status(GRPCStatus, Metadata)
}

/// Where a `ServerCall` sends its response parts: a surface's side of one call. Every method
/// runs on the call's event loop.
package protocol ServerCallSink: AnyObject {
    /// Sends one part; `false` when the response had already ended (the part is dropped).
    func write(_ part: RPCResponsePart) -> Bool
    /// What the client hears if its deadline passes before the handler finishes.
    func setDeadlineStatus(_ status: GRPCStatus)
    /// Runs `callback` with whether the ended response reached the client.
    func addDeliveryCallback(_ callback: @escaping @Sendable (Bool) -> Void)
    /// Runs `callback` once if the call ends without the handler ending it.
    func addCancelCallback(_ callback: @escaping @Sendable (GRPCStatus) -> Void)
    /// Runs `callback` once everything sent so far has left the call's queue.
    func addDrainedCallback(_ callback: @escaping @Sendable () -> Void)
}
