import Synchronization

/// Settings of the scheduler; the CLI exposes each as a flag.
public struct SchedulerConfiguration: Sendable {
    /// How long a consumer may hold a task without reporting (`--lease-ms`).
    public var leaseDurationMs: Int64 = 30_000
    /// Deliveries before an abandoned task is failed instead of requeued (`--max-attempts`).
    public var maxAttempts: Int32 = 3
    /// Cap on FetchTask's `wait_ms` long-poll (`--max-wait-ms`).
    public var maxFetchWaitMs: Int64 = 30_000
    /// Workflows tasks may be created for.
    public var workflows: Set<String> = ["face_swap"]

    public init() {}
}

/// A request to create a task.
public struct CreateTaskCommand: Sendable {
    public var workflow: String
    public var params: FaceSwapParameters
    public var idempotencyKey: String
    public var priority: Int32

    public init(workflow: String = "", params: FaceSwapParameters, idempotencyKey: String = "", priority: Int32 = 0) {
        self.workflow = workflow
        self.params = params
        self.idempotencyKey = idempotencyKey
        self.priority = priority
    }
}

/// A status report from the consumer holding a task's lease.
public struct StatusUpdate: Sendable {
    public var taskID: String
    public var leaseID: String
    /// `nil` for an unspecified status, which is refused.
    public var state: TaskState?
    public var progress: Float
    public var output: TaskOutput?
    public var error: String

    public init(taskID: String, leaseID: String, state: TaskState?, progress: Float = 0, output: TaskOutput? = nil, error: String = "") {
        self.taskID = taskID
        self.leaseID = leaseID
        self.state = state
        self.progress = progress
        self.output = output
        self.error = error
    }
}

/// A task handed to a consumer, with the lease it must quote in its updates.
public struct LeaseGrant: Sendable {
    public var task: TaskRecord
    public var lease: Lease
}

/// Identifies a parked FetchTask or a watcher, to withdraw it.
public struct SchedulerToken: Sendable, Hashable {
    let value: UInt64
}

/// The task queue: creation, leases to consumers, status changes, cancellation, and the
/// fan-out of changes to watchers and waiting consumers.
///
/// Every change is written to the `TaskStore` first; the caller's completion, watchers and
/// waiting consumers hear of it only after the store committed it. Completions may run on
/// any thread (synchronously for the in-memory store) and must not block.
public final class TaskScheduler: Sendable {
    public typealias Completion<T> = @Sendable (Result<T, TaskError>) -> Void
    public typealias WatchCallback = @Sendable (TaskRecord) -> Void

    public let configuration: SchedulerConfiguration
    private let store: any TaskStore
    private let clock: WallClock
    private let ids: SortableIDGenerator
    private let state: Mutex<SchedulerState>

    public init(configuration: SchedulerConfiguration, store: any TaskStore, clock: WallClock = .system) throws {
        self.configuration = configuration
        self.store = store
        self.clock = clock
        self.ids = SortableIDGenerator(clock: clock)
        var initial = SchedulerState()
        for record in try store.loadAll() { initial.index(record) }
        self.state = Mutex(initial)
    }

    /// Sets the unified-format fields stamped on new tasks: the URL (`source_channel`) and
    /// port (`target_port`) of the server they arrived through, known once it has bound.
    public func setOrigin(_ origin: TaskOrigin) {
        state.withLock { $0.origin = origin }
    }

    // MARK: - Reads

    public func task(id: String) -> TaskRecord? {
        state.withLock { $0.tasks[id] }
    }

    /// Counts by state, for health and metrics.
    public func counts() -> [TaskState: Int] {
        state.withLock { state in
            var counts: [TaskState: Int] = [:]
            for record in state.tasks.values { counts[record.state, default: 0] += 1 }
            return counts
        }
    }

    // MARK: - Clients

    public func createTask(_ command: CreateTaskCommand, completion: @escaping Completion<TaskRecord>) {
        let workflow = command.workflow.isEmpty ? "face_swap" : command.workflow
        guard configuration.workflows.contains(workflow) else {
            let known = configuration.workflows.sorted().joined(separator: ", ")
            return completion(.failure(TaskError(.invalidArgument, "workflow '\(workflow)' is not served here (one of: \(known))")))
        }
        let params: FaceSwapParameters
        switch TaskValidation.faceSwapParameters(command.params) {
        case .success(let resolved): params = resolved
        case .failure(let error): return completion(.failure(error))
        }
        let key = command.idempotencyKey.isEmpty ? nil : command.idempotencyKey
        let now = clock.nowMs()
        let taskID = "task_" + ids.next()
        enum Outcome { case created(TaskRecord), earlier(TaskRecord), waitingForEarlier }
        let outcome: Outcome = state.withLock { state in
            if let key, let id = state.idempotency[key], let earlier = state.tasks[id] {
                // Same key while the first creation is still being written: answer together
                // with it, so nobody is told of a task that might not get stored.
                guard state.uncommittedCreations[id] == nil else {
                    state.uncommittedCreations[id]!.append(completion)
                    return .waitingForEarlier
                }
                return .earlier(earlier)
            }
            let record = TaskRecord(
                taskID: taskID, workflow: workflow, environment: workflow,
                targetPort: state.origin.targetPort, params: params, state: .pending,
                sourceChannel: state.origin.sourceChannel, createdAtMs: now, updatedAtMs: now,
                priority: command.priority, idempotencyKey: key)
            state.index(record)
            if key != nil { state.uncommittedCreations[taskID] = [] }
            return .created(record)
        }
        switch outcome {
        case .waitingForEarlier: return
        case .earlier(let record): return completion(.success(record))
        case .created(let record):
            let answerDuplicates: @Sendable (Result<TaskRecord, TaskError>) -> Void = { [self] result in
                guard record.idempotencyKey != nil else { return }
                let duplicates = state.withLock { $0.uncommittedCreations.removeValue(forKey: record.taskID) ?? [] }
                for duplicate in duplicates { duplicate(result) }
            }
            persist(
                [Change(old: nil, new: record)],
                failure: { error in
                    completion(.failure(error))
                    answerDuplicates(.failure(error))
                }
            ) { [self] in
                completion(.success(record))
                answerDuplicates(.success(record))
                dispatchToWaiters()
            }
        }
    }

    /// PENDING or PROCESSING becomes CANCELLED; a terminal task is returned as it is.
    public func cancelTask(id: String, completion: @escaping Completion<TaskRecord>) {
        let now = clock.nowMs()
        let outcome: Result<Change?, TaskError> = state.withLock { state in
            guard let old = state.tasks[id] else { return .failure(Self.notFound(id)) }
            if old.state.isTerminal { return .success(nil) }
            var new = old
            new.state = .cancelled
            new.lease = nil
            new.updatedAtMs = now
            new.version += 1
            state.index(new)
            return .success(Change(old: old, new: new))
        }
        switch outcome {
        case .failure(let error): completion(.failure(error))
        case .success(nil): completion(.success(task(id: id)!))
        case .success(let change?):
            persist([change], failure: { completion(.failure($0)) }) { completion(.success(change.new)) }
        }
    }

    /// Registers `onChange` for every committed change of the task and returns its current
    /// state. Callbacks may overlap with the returned state; use `version` to drop repeats.
    public func watch(taskID: String, onChange: @escaping WatchCallback) -> Result<(TaskRecord, SchedulerToken), TaskError> {
        state.withLock { state in
            guard let record = state.tasks[taskID] else { return .failure(Self.notFound(taskID)) }
            let token = state.makeToken()
            state.watchers[taskID, default: [:]][token] = onChange
            return .success((record, token))
        }
    }

    public func unwatch(taskID: String, token: SchedulerToken) {
        state.withLock { state in
            state.watchers[taskID]?[token] = nil
            if state.watchers[taskID]?.isEmpty == true { state.watchers[taskID] = nil }
        }
    }

    // MARK: - Consumers

    /// Hands out the best PENDING task of `workflows` (all when empty). With nothing queued,
    /// answers `nil` at once when `waitMs` is 0; otherwise parks the request and returns its
    /// token: `deliver` runs when a task arrives, unless `cancelWait` withdrew it first.
    @discardableResult
    public func fetchTask(
        consumerID: String, workflows: [String], waitMs: Int64, deliver: @escaping Completion<LeaseGrant?>
    ) -> SchedulerToken? {
        guard waitMs >= 0 else {
            deliver(.failure(TaskError(.invalidArgument, "wait_ms must not be negative, got \(waitMs)")))
            return nil
        }
        let filter = Set(workflows)
        let now = clock.nowMs()
        let (grant, token): (Change?, SchedulerToken?) = state.withLock { state in
            if let change = state.leaseNext(for: filter, consumerID: consumerID, now: now, configuration: configuration, ids: ids) {
                return (change, nil)
            }
            guard waitMs > 0 else { return (nil, nil) }
            let token = state.makeToken()
            state.waiters.append(Waiter(token: token, consumerID: consumerID, workflows: filter, deliver: deliver))
            return (nil, token)
        }
        if let grant {
            persist([grant], failure: { deliver(.failure($0)) }) { deliver(.success(LeaseGrant(task: grant.new, lease: grant.new.lease!))) }
        } else if token == nil {
            deliver(.success(nil))
        }
        return token
    }

    /// Withdraws a parked fetch; `false` when it was already served (its `deliver` ran or runs).
    public func cancelWait(_ token: SchedulerToken) -> Bool {
        state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.token == token }) else { return false }
            state.waiters.remove(at: index)
            return true
        }
    }

    /// Takes back a lease whose response never reached the consumer: the task is PENDING
    /// again and the delivery does not count as an attempt.
    public func returnUndelivered(_ grant: LeaseGrant) {
        let now = clock.nowMs()
        let change: Change? = state.withLock { state in
            guard let old = state.tasks[grant.task.taskID], old.state == .processing, old.lease?.id == grant.lease.id else {
                return nil
            }
            var new = old
            new.state = .pending
            new.lease = nil
            new.attempt -= 1
            new.updatedAtMs = now
            new.version += 1
            state.index(new)
            return Change(old: old, new: new)
        }
        guard let change else { return }
        // On a failed write the lease stays in place and simply expires later.
        persist([change], failure: { _ in }) { [self] in dispatchToWaiters() }
    }

    public func updateStatus(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>) {
        let now = clock.nowMs()
        let outcome: Result<Change, TaskError> = state.withLock { state in
            guard let old = state.tasks[update.taskID] else { return .failure(Self.notFound(update.taskID)) }
            switch Self.apply(update, to: old, now: now, configuration: configuration) {
            case .failure(let error): return .failure(error)
            case .success(let new):
                state.index(new)
                return .success(Change(old: old, new: new))
            }
        }
        switch outcome {
        case .failure(let error): completion(.failure(error))
        case .success(let change):
            persist([change], failure: { completion(.failure($0)) }) { [self] in
                completion(.success(change.new))
                if change.new.state == .pending { dispatchToWaiters() }
            }
        }
    }

    /// Requeues (or, after `maxAttempts` deliveries, fails) every task whose lease has run out.
    /// The server calls this periodically.
    public func expireLeases() {
        let now = clock.nowMs()
        let changes: [Change] = state.withLock { state in
            var changes: [Change] = []
            while let entry = state.leaseExpiries.top, entry.expiresAtMs <= now {
                state.leaseExpiries.pop()
                guard let old = state.tasks[entry.taskID], old.state == .processing,
                    old.lease?.id == entry.leaseID, old.lease?.expiresAtMs == entry.expiresAtMs
                else { continue }
                var new = old
                new.lease = nil
                new.updatedAtMs = now
                new.version += 1
                if old.attempt >= configuration.maxAttempts {
                    new.state = .failed
                    new.error =
                        "lease expired on attempt \(old.attempt) of \(configuration.maxAttempts): no consumer finished the task within its lease of \(configuration.leaseDurationMs) ms"
                } else {
                    new.state = .pending
                }
                state.index(new)
                changes.append(Change(old: old, new: new))
            }
            return changes
        }
        guard !changes.isEmpty else { return }
        // On a failed write the leases are restored and the next sweep tries again.
        persist(changes, failure: { _ in }) { [self] in dispatchToWaiters() }
    }

    // MARK: - Retention

    /// Deletes up to `limit` finished (COMPLETED, FAILED, CANCELLED) tasks that have not
    /// changed for `ageMs`, oldest first: from the store, then from memory. Reports how many
    /// went; fewer than `limit` means none of that age is left.
    public func purgeFinishedTasks(olderThanMs ageMs: Int64, limit: Int, completion: @escaping Completion<Int>) {
        let cutoff = clock.nowMs() - ageMs
        let expired = state.withLock { $0.takeFinished(changedBefore: cutoff, limit: limit) }
        guard !expired.isEmpty else { return completion(.success(0)) }
        store.delete(expired.map(\.taskID)) { [self] result in
            switch result {
            case .success:
                state.withLock { state in
                    for entry in expired { state.forget(entry.taskID) }
                }
                completion(.success(expired.count))
            case .failure(let error):
                // Still stored: they come up again at the next purge.
                state.withLock { state in
                    for entry in expired { state.finishedByAge.push(entry) }
                }
                completion(.failure(Self.storeFailure(error)))
            }
        }
    }

    // MARK: - Internals

    /// Leases pending tasks to parked fetches, first come first served.
    private func dispatchToWaiters() {
        let now = clock.nowMs()
        let grants: [(Waiter, Change)] = state.withLock { state in
            var grants: [(Waiter, Change)] = []
            var index = 0
            while index < state.waiters.count {
                let waiter = state.waiters[index]
                if let change = state.leaseNext(
                    for: waiter.workflows, consumerID: waiter.consumerID, now: now, configuration: configuration, ids: ids)
                {
                    state.waiters.remove(at: index)
                    grants.append((waiter, change))
                } else {
                    index += 1
                }
            }
            return grants
        }
        for (waiter, change) in grants {
            persist([change], failure: { waiter.deliver(.failure($0)) }) {
                waiter.deliver(.success(LeaseGrant(task: change.new, lease: change.new.lease!)))
            }
        }
    }

    /// Writes `changes`; on commit tells watchers and runs `committed`, otherwise undoes the
    /// in-memory change and reports the store's error.
    private func persist(_ changes: [Change], failure: @escaping @Sendable (TaskError) -> Void, committed: @escaping @Sendable () -> Void) {
        store.write(changes.map(\.new)) { [self] result in
            switch result {
            case .success:
                notifyWatchers(of: changes.map(\.new))
                committed()
            case .failure(let error):
                state.withLock { state in
                    for change in changes.reversed() { state.revert(change) }
                }
                failure(Self.storeFailure(error))
            }
        }
    }

    private static func storeFailure(_ error: TaskStoreError) -> TaskError {
        let kind: TaskError.Kind = error.kind == .resourceExhausted ? .resourceExhausted : .unavailable
        return TaskError(kind, "the task store could not save the change: \(error.message)")
    }

    private func notifyWatchers(of records: [TaskRecord]) {
        let deliveries: [(WatchCallback, TaskRecord)] = state.withLock { state in
            records.flatMap { record in (state.watchers[record.taskID]?.values).map { $0.map { ($0, record) } } ?? [] }
        }
        for (callback, record) in deliveries { callback(record) }
    }

    private static func notFound(_ id: String) -> TaskError {
        TaskError(.notFound, "task '\(id)' does not exist")
    }

    /// The state machine of consumer updates: the new record, or why the update is refused.
    static func apply(_ update: StatusUpdate, to old: TaskRecord, now: Int64, configuration: SchedulerConfiguration) -> Result<TaskRecord, TaskError> {
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
        var new = old
        new.updatedAtMs = now
        new.version += 1
        switch update.state {
        case .processing:
            new.progress = max(old.progress, update.progress)
            new.lease = Lease(id: lease.id, consumerID: lease.consumerID, expiresAtMs: now + configuration.leaseDurationMs)
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
        return .success(new)
    }
}

/// The server that new tasks arrive through.
public struct TaskOrigin: Sendable {
    public var sourceChannel: String
    public var targetPort: Int32

    public init(sourceChannel: String, targetPort: Int32) {
        self.sourceChannel = sourceChannel
        self.targetPort = targetPort
    }
}

/// A task's state before and after one change, so a failed commit can be undone.
struct Change: Sendable {
    var old: TaskRecord?
    var new: TaskRecord
}

struct Waiter: Sendable {
    var token: SchedulerToken
    var consumerID: String
    /// Empty: any workflow.
    var workflows: Set<String>
    var deliver: TaskScheduler.Completion<LeaseGrant?>
}

/// The scheduler's indexes, guarded by its mutex.
struct SchedulerState {
    struct QueueEntry {
        var priority: Int32
        var createdAtMs: Int64
        var taskID: String
        var version: Int64
    }

    struct LeaseEntry {
        var expiresAtMs: Int64
        var taskID: String
        var leaseID: String
    }

    struct FinishedEntry: Sendable {
        var updatedAtMs: Int64
        var taskID: String
    }

    var origin = TaskOrigin(sourceChannel: "http://localhost:8000", targetPort: 8000)
    var tasks: [String: TaskRecord] = [:]
    var idempotency: [String: String] = [:]
    /// PENDING tasks per workflow: highest priority first, then oldest. Stale entries (the task
    /// moved on) are dropped when they surface.
    var pending: [String: PriorityHeap<QueueEntry>] = [:]
    var leaseExpiries = PriorityHeap<LeaseEntry> { $0.expiresAtMs < $1.expiresAtMs }
    /// Finished tasks, least recently changed first, for retention. A finished task never
    /// changes, so each has one entry (a reverted one leaves a stale entry, skipped).
    var finishedByAge = PriorityHeap<FinishedEntry> { $0.updatedAtMs < $1.updatedAtMs }
    /// Tasks created with an idempotency key whose creation is not committed yet, with the
    /// completions of later requests for the same key.
    var uncommittedCreations: [String: [TaskScheduler.Completion<TaskRecord>]] = [:]
    var waiters: [Waiter] = []
    var watchers: [String: [SchedulerToken: TaskScheduler.WatchCallback]] = [:]
    private var lastToken: UInt64 = 0

    mutating func makeToken() -> SchedulerToken {
        lastToken += 1
        return SchedulerToken(value: lastToken)
    }

    /// Stores `record` and adds it to the index its state belongs in.
    mutating func index(_ record: TaskRecord) {
        tasks[record.taskID] = record
        if let key = record.idempotencyKey { idempotency[key] = record.taskID }
        switch record.state {
        case .pending:
            pending[record.workflow, default: Self.makeQueue()].push(
                QueueEntry(priority: record.priority, createdAtMs: record.createdAtMs, taskID: record.taskID, version: record.version))
        case .processing:
            if let lease = record.lease {
                leaseExpiries.push(LeaseEntry(expiresAtMs: lease.expiresAtMs, taskID: record.taskID, leaseID: lease.id))
            }
        case .completed, .failed, .cancelled:
            finishedByAge.push(FinishedEntry(updatedAtMs: record.updatedAtMs, taskID: record.taskID))
        }
    }

    /// Removes up to `limit` finished tasks last changed before `cutoffMs` from the retention
    /// index, oldest first, and returns them; the tasks themselves stay until `forget`.
    mutating func takeFinished(changedBefore cutoffMs: Int64, limit: Int) -> [FinishedEntry] {
        var taken: [FinishedEntry] = []
        while taken.count < limit, let entry = finishedByAge.top, entry.updatedAtMs < cutoffMs {
            finishedByAge.pop()
            if let record = tasks[entry.taskID], record.state.isTerminal, record.updatedAtMs == entry.updatedAtMs {
                taken.append(entry)
            }
        }
        return taken
    }

    /// Drops a purged task from every index.
    mutating func forget(_ taskID: String) {
        guard let record = tasks.removeValue(forKey: taskID) else { return }
        if let key = record.idempotencyKey, idempotency[key] == taskID { idempotency[key] = nil }
    }

    /// Undoes `change` if nothing changed the task since.
    mutating func revert(_ change: Change) {
        guard tasks[change.new.taskID]?.version == change.new.version else { return }
        if let old = change.old {
            index(old)
        } else {
            tasks[change.new.taskID] = nil
            if let key = change.new.idempotencyKey { idempotency[key] = nil }
        }
    }

    /// Leases the best pending task of `workflows` (all when empty), if any.
    mutating func leaseNext(
        for workflows: Set<String>, consumerID: String, now: Int64, configuration: SchedulerConfiguration,
        ids: SortableIDGenerator
    ) -> Change? {
        var best: (workflow: String, entry: QueueEntry)?
        for workflow in workflows.isEmpty ? Set(pending.keys) : workflows {
            guard let entry = validTop(of: workflow) else { continue }
            if best == nil || Self.precedes(entry, best!.entry) { best = (workflow, entry) }
        }
        guard let best else { return nil }
        pending[best.workflow]!.pop()
        let old = tasks[best.entry.taskID]!
        var new = old
        new.state = .processing
        new.attempt += 1
        new.updatedAtMs = now
        new.version += 1
        new.lease = Lease(id: "lease_" + ids.next(), consumerID: consumerID, expiresAtMs: now + configuration.leaseDurationMs)
        index(new)
        return Change(old: old, new: new)
    }

    /// The top of a workflow's queue after dropping entries whose task has moved on.
    private mutating func validTop(of workflow: String) -> QueueEntry? {
        while let entry = pending[workflow]?.top {
            if let record = tasks[entry.taskID], record.state == .pending, record.version == entry.version {
                return entry
            }
            pending[workflow]!.pop()
        }
        return nil
    }

    private static func precedes(_ a: QueueEntry, _ b: QueueEntry) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        if a.createdAtMs != b.createdAtMs { return a.createdAtMs < b.createdAtMs }
        return a.taskID < b.taskID
    }

    private static func makeQueue() -> PriorityHeap<QueueEntry> {
        PriorityHeap(by: precedes)
    }
}
