/// Caps on what clients may pile up in the queue (`swapline serve` flags in QuotaOptions);
/// `nil` means no cap. `TaskRules` applies them.
public struct TaskQuotas: Sendable, Equatable {
    /// Open (PENDING or PROCESSING) tasks one owner may have (`--max-open-tasks-per-client`).
    public var maxOpenTasksPerOwner: Int?
    /// PENDING tasks the whole queue may hold (`--max-queue-length`).
    public var maxQueueLength: Int?
    /// How long a task may stay PENDING before it fails as expired (`--max-pending-age-ms`).
    public var maxPendingAgeMs: Int64?

    /// The retry hint of a refusal because the queue is full: long enough for workers to take
    /// some tasks, short enough that a client does not give up.
    public static let queueFullRetryAfterSeconds = 30

    public init(maxOpenTasksPerOwner: Int? = nil, maxQueueLength: Int? = nil, maxPendingAgeMs: Int64? = nil) {
        self.maxOpenTasksPerOwner = maxOpenTasksPerOwner
        self.maxQueueLength = maxQueueLength
        self.maxPendingAgeMs = maxPendingAgeMs
    }
}
