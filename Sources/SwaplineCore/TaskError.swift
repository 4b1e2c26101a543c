/// Why a scheduler operation was refused. The kinds match gRPC status codes one to one, so
/// every transport can map them without knowing the rules behind them.
public struct TaskError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case invalidArgument
        case notFound
        /// The task is not in a state that allows the operation (wrong lease, terminal task).
        case failedPrecondition
        /// The task was cancelled: a worker should stop.
        case aborted
        /// The store could not commit; retrying later may succeed.
        case unavailable
        case resourceExhausted
    }

    public var kind: Kind
    public var message: String
    /// For a refusal that passes with time (a full queue): seconds after which a retry may
    /// succeed; gRPC sends it as the `retry-after` trailer, REST as `Retry-After`.
    public var retryAfterSeconds: Int?

    public init(_ kind: Kind, _ message: String, retryAfterSeconds: Int? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { message }
}
