/// The task life cycle as pure functions: which change is allowed, what it does to a task,
/// attempts and their limit, fencing by lease. Every queue backend reads a task, asks these
/// rules for its next state and writes that state in one atomic step, so no backend decides
/// anything on its own.
///
/// Each function returns the new record (with `version` one higher and `updatedAtMs` set to
/// `now`), `nil` when the change does not apply and the task stays as it is, or the reason the
/// change is refused.
public struct TaskRules: Sendable {
    /// How long a consumer may hold a task without reporting (`--lease-ms`).
    public var leaseDurationMs: Int64
    /// Deliveries before an abandoned task is failed instead of requeued (`--max-attempts`).
    public var maxAttempts: Int32
    /// What a new task may not push past; counted by the backend in the create's atomic step.
    public var quotas: TaskQuotas

    public init(leaseDurationMs: Int64 = 30_000, maxAttempts: Int32 = 3, quotas: TaskQuotas = TaskQuotas()) {
        self.leaseDurationMs = leaseDurationMs
        self.maxAttempts = maxAttempts
        self.quotas = quotas
    }

    public init(_ configuration: SchedulerConfiguration) {
        self.init(leaseDurationMs: configuration.leaseDurationMs, maxAttempts: configuration.maxAttempts, quotas: configuration.quotas)
    }

    // MARK: - Fetch order

    /// Whether `a` is handed out before `b`: higher priority first, then older, then by id.
    public static func precedes(_ a: TaskRecord, _ b: TaskRecord) -> Bool {
        precedes(
            (priority: a.priority, createdAtMs: a.createdAtMs, taskID: a.taskID),
            (priority: b.priority, createdAtMs: b.createdAtMs, taskID: b.taskID))
    }

    public typealias FetchKey = (priority: Int32, createdAtMs: Int64, taskID: String)

    public static func precedes(_ a: FetchKey, _ b: FetchKey) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.createdAtMs != b.createdAtMs { return a.createdAtMs < b.createdAtMs }
        return a.taskID < b.taskID
    }

    // MARK: - Changes

    /// A PENDING task handed to `consumerID` under a new lease: one more attempt.
    public func claim(_ task: TaskRecord, consumerID: String, leaseID: String, now: Int64) -> TaskRecord? {
        guard task.state == .pending else { return nil }
        var new = Self.touched(task, now: now)
        new.state = .processing
        new.attempt += 1
        new.lease = Lease(id: leaseID, consumerID: consumerID, expiresAtMs: now + leaseDurationMs)
        return Self.recorded(new, note: "leased by \(consumerID)")
    }

    /// A consumer's report under its lease.
    public func apply(_ update: StatusUpdate, to old: TaskRecord, now: Int64) -> Result<TaskRecord, TaskError> {
        if old.state == .cancelled {
            return .failure(TaskError(.aborted, "task '\(old.taskID)' was cancelled; stop working on it"))
        }
        if old.state.isTerminal {
            return .failure(TaskError(.failedPrecondition, "task '\(old.taskID)' is already \(old.state.rawValue) and cannot change"))
        }
        guard let lease = old.lease, old.state == .processing, lease.id == update.leaseID else {
            return .failure(
                TaskError(.failedPrecondition, "lease '\(update.leaseID)' is not the current lease of task '\(old.taskID)' (it expired or was never granted)"))
        }
        guard update.progress.isFinite, (0...1).contains(update.progress) else {
            return .failure(TaskError(.invalidArgument, "progress must be between 0 and 1, got \(update.progress)"))
        }
        var new = Self.touched(old, now: now)
        switch update.state {
        case .processing:
            new.progress = max(old.progress, update.progress)
            new.lease = Lease(id: lease.id, consumerID: lease.consumerID, expiresAtMs: now + leaseDurationMs)
        case .completed:
            guard let output = update.output else {
                return .failure(TaskError(.invalidArgument, "a COMPLETED update must carry its result"))
            }
            new.state = .completed
            new.progress = 1
            new.output = output
            new.lease = nil
        case .failed:
            guard !update.error.isEmpty else {
                return .failure(TaskError(.invalidArgument, "a FAILED update must say why in `error`"))
            }
            new.state = .failed
            new.error = update.error
            new.lease = nil
        case .pending:
            // The consumer gives the task back (e.g. while draining): not counted as an attempt.
            new.state = .pending
            new.lease = nil
            new.attempt -= 1
        case .cancelled:
            return .failure(TaskError(.failedPrecondition, "consumers cannot cancel a task; clients use CancelTask"))
        case nil:
            return .failure(TaskError(.invalidArgument, "status must be PROCESSING, COMPLETED, FAILED or PENDING"))
        }
        switch new.state {
        case .processing: return .success(new)  // a progress report is no change of state
        case .pending: return .success(Self.recorded(new, note: "handed back by \(lease.consumerID)"))
        default: return .success(Self.recorded(new, note: new.error))
        }
    }

    /// PENDING or PROCESSING becomes CANCELLED; `nil` for a task that already ended (it is
    /// answered as it is). A cancel always wins over a consumer's later report, which then
    /// gets ABORTED.
    public func cancel(_ task: TaskRecord, now: Int64) -> TaskRecord? {
        guard !task.state.isTerminal else { return nil }
        var new = Self.touched(task, now: now)
        new.state = .cancelled
        new.lease = nil
        return Self.recorded(new, note: "cancelled by a client")
    }

    /// Takes back a lease whose grant never reached its consumer: PENDING again, and the
    /// delivery does not count as an attempt. `nil` when that lease is no longer current.
    public func handBack(_ task: TaskRecord, leaseID: String, now: Int64) -> TaskRecord? {
        guard task.state == .processing, task.lease?.id == leaseID else { return nil }
        var new = Self.touched(task, now: now)
        new.state = .pending
        new.lease = nil
        new.attempt -= 1
        return Self.recorded(new, note: "lease not delivered to its consumer")
    }

    /// A PROCESSING task whose lease has run out: PENDING again, or FAILED after
    /// `maxAttempts` deliveries. `nil` while the lease still runs.
    public func expire(_ task: TaskRecord, now: Int64) -> TaskRecord? {
        guard task.state == .processing, let lease = task.lease, lease.expiresAtMs <= now else { return nil }
        var new = Self.touched(task, now: now)
        new.lease = nil
        if task.attempt >= maxAttempts {
            new.state = .failed
            new.error =
                "lease expired on attempt \(task.attempt) of \(maxAttempts): no consumer finished the task within its lease of \(leaseDurationMs) ms"
            return Self.recorded(new, note: new.error)
        }
        new.state = .pending
        return Self.recorded(new, note: "lease expired")
    }

    /// Whether `task` (PENDING, not stored yet) may be stored, given the open tasks of its owner
    /// and the PENDING tasks of the whole queue; a backend may stop counting at a cap. Tasks
    /// without an owner (a server that checks no tokens) are bounded by the queue length alone.
    public func admit(_ task: TaskRecord, openTasksOfOwner: Int, queuedTasks: Int) -> TaskError? {
        if let cap = quotas.maxQueueLength, queuedTasks >= cap {
            return TaskError(
                .resourceExhausted, "the queue is full: \(cap) tasks are waiting, the most this server queues; retry later",
                retryAfterSeconds: TaskQuotas.queueFullRetryAfterSeconds)
        }
        if let cap = quotas.maxOpenTasksPerOwner, !task.owner.isEmpty, openTasksOfOwner >= cap {
            return TaskError(
                .resourceExhausted,
                "client '\(task.owner)' already has \(cap) open (PENDING or PROCESSING) tasks, the most allowed; wait for some to finish or cancel them")
        }
        return nil
    }

    /// A task PENDING for longer than `quotas.maxPendingAgeMs` (since it last became PENDING):
    /// FAILED, its error naming the queue stage and the age. `nil` while it may still wait.
    public func expirePending(_ task: TaskRecord, now: Int64) -> TaskRecord? {
        guard task.state == .pending, let maxAge = quotas.maxPendingAgeMs, now - task.updatedAtMs >= maxAge else { return nil }
        var new = Self.touched(task, now: now)
        new.state = .failed
        new.error =
            "expired in stage queue: PENDING for \(now - task.updatedAtMs) ms, longer than the limit of \(maxAge) ms; no consumer took the task in time"
        return Self.recorded(new, note: new.error)
    }

    /// Whether retention deletes `task`: it ended and has not changed since `cutoffMs`.
    public static func isPurgeable(_ task: TaskRecord, changedBeforeMs cutoffMs: Int64) -> Bool {
        task.state.isTerminal && task.updatedAtMs < cutoffMs
    }

    /// A new task as stored: PENDING, its history starting with its creation.
    public static func created(_ task: TaskRecord) -> TaskRecord {
        recorded(task, note: "created")
    }

    /// `task` with its current state appended to its history: every change of state goes
    /// through here, in the same atomic step that stores it.
    private static func recorded(_ task: TaskRecord, note: String) -> TaskRecord {
        var new = task
        new.history = TaskHistory.appending(
            TaskTransition(state: task.state, atMs: task.updatedAtMs, attempt: task.attempt, note: note), to: task.history)
        return new
    }

    private static func touched(_ task: TaskRecord, now: Int64) -> TaskRecord {
        var new = task
        new.updatedAtMs = now
        new.version += 1
        return new
    }
}
