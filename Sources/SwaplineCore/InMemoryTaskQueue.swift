import Synchronization

/// A queue backend in the process's memory (`--store memory`, tests and benchmarks): every
/// operation commits at once under one lock, and nothing survives the process. Memory grows
/// with the tasks kept until retention deletes them.
public final class InMemoryTaskQueue: TaskQueue {
    private let rules: TaskRules
    private let clock: WallClock
    private let state: Mutex<InMemoryQueueState>
    private let feed = ChangeFeed()

    public init(rules: TaskRules, clock: WallClock = .system) {
        self.rules = rules
        self.clock = clock
        state = Mutex(InMemoryQueueState(tracksPendingAge: rules.quotas.maxPendingAgeMs != nil))
    }

    public func setChangeHandler(_ handler: @escaping @Sendable (TaskRecord) -> Void) {
        feed.setHandler(handler)
    }

    public func create(_ task: TaskRecord, completion: @escaping Completion<CreateOutcome>) {
        let outcome: Result<CreateOutcome, TaskError> = state.withLock { state in
            if let key = task.idempotencyKey, let id = state.idempotency[InMemoryQueueState.OwnedKey(owner: task.owner, key: key)],
                let earlier = state.tasks[id]
            {
                return .success(.existing(earlier))
            }
            let openTasks = state.openTasksByOwner[task.owner] ?? 0
            if let refusal = rules.admit(task, openTasksOfOwner: openTasks, queuedTasks: state.pendingCount) {
                return .failure(refusal)
            }
            commit(&state, task)
            return .success(.created(task))
        }
        feed.deliver()
        completion(outcome)
    }

    public func claim(workflows: Set<String>, consumerID: String, completion: @escaping Completion<LeaseGrant?>) {
        let now = clock.nowMs()
        let claimed: TaskRecord? = state.withLock { state in
            guard let next = state.nextPending(in: workflows) else { return nil }
            let claimed = rules.claim(next, consumerID: consumerID, leaseID: LeaseID.random(), now: now)!
            commit(&state, claimed)
            return claimed
        }
        guard let claimed else { return completion(.success(nil)) }
        feed.deliver()
        completion(.success(LeaseGrant(task: claimed, lease: claimed.lease!)))
    }

    public func update(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>) {
        let now = clock.nowMs()
        change(taskID: update.taskID, completion: completion) { old in rules.apply(update, to: old, now: now).map { $0 } }
    }

    public func cancel(taskID: String, completion: @escaping Completion<TaskRecord>) {
        let now = clock.nowMs()
        let outcome: Result<(TaskRecord, changed: Bool), TaskError> = state.withLock { state in
            guard let old = state.tasks[taskID] else { return .failure(TaskError.noSuchTask(taskID)) }
            guard let new = rules.cancel(old, now: now) else { return .success((old, false)) }
            commit(&state, new)
            return .success((new, true))
        }
        feed.deliver()
        completion(outcome.map(\.0))
    }

    public func handBack(taskID: String, leaseID: String, completion: @escaping Completion<TaskRecord?>) {
        let now = clock.nowMs()
        let returned: TaskRecord? = state.withLock { state in
            guard let old = state.tasks[taskID], let new = rules.handBack(old, leaseID: leaseID, now: now) else { return nil }
            commit(&state, new)
            return new
        }
        feed.deliver()
        completion(.success(returned))
    }

    public func expireLeases(limit: Int, completion: @escaping Completion<Int>) {
        let now = clock.nowMs()
        let changed: [TaskRecord] = state.withLock { state in
            var changed: [TaskRecord] = []
            while changed.count < limit, let entry = state.leaseExpiries.top, entry.expiresAtMs <= now {
                state.leaseExpiries.pop()
                guard let old = state.tasks[entry.taskID], old.lease?.id == entry.leaseID,
                    let new = rules.expire(old, now: now)
                else { continue }
                commit(&state, new)
                changed.append(new)
            }
            if let maxAgeMs = rules.quotas.maxPendingAgeMs {
                while changed.count < limit, let entry = state.pendingByAge.top, entry.updatedAtMs <= now - maxAgeMs {
                    state.pendingByAge.pop()
                    guard let old = state.tasks[entry.taskID], old.version == entry.version,
                        let new = rules.expirePending(old, now: now)
                    else { continue }
                    commit(&state, new)
                    changed.append(new)
                }
            }
            return changed
        }
        feed.deliver()
        completion(.success(changed.count))
    }

    public func purgeFinished(changedBeforeMs cutoffMs: Int64, limit: Int, completion: @escaping Completion<[TaskRecord]>) {
        let purged: [TaskRecord] = state.withLock { state in
            var purged: [TaskRecord] = []
            while purged.count < limit, let entry = state.finishedByAge.top, entry.updatedAtMs < cutoffMs {
                state.finishedByAge.pop()
                guard let task = state.tasks[entry.taskID], task.updatedAtMs == entry.updatedAtMs,
                    TaskRules.isPurgeable(task, changedBeforeMs: cutoffMs)
                else { continue }
                state.forget(task)
                purged.append(task)
            }
            return purged
        }
        completion(.success(purged))
    }

    public func task(id: String, completion: @escaping Completion<TaskRecord?>) {
        completion(.success(state.withLock { $0.tasks[id] }))
    }

    public func list(_ query: TaskListQuery, completion: @escaping Completion<TaskPage>) {
        completion(.success(state.withLock { state in
            if let keyed = query.ownedKey {
                let id = state.idempotency[InMemoryQueueState.OwnedKey(owner: keyed.owner, key: keyed.key)]
                return query.page(ofKeyed: id.flatMap { state.tasks[$0] })
            }
            return state.listing.page(query, tasks: state.tasks)
        }))
    }

    public func stats(
        scope: TaskScope, workflow: String?, finishedSinceMs: Int64, completion: @escaping Completion<TaskStoreStats>
    ) {
        completion(.success(state.withLock { state in
            state.listing.stats(scope: scope, workflow: workflow, finishedSinceMs: finishedSinceMs, tasks: state.tasks)
        }))
    }

    public func close() async {}

    /// Tasks held, for tests.
    public var count: Int { state.withLock { $0.tasks.count } }

    /// Reads, applies and stores one change of an existing task.
    private func change(
        taskID: String, completion: @escaping Completion<TaskRecord>, _ next: (TaskRecord) -> Result<TaskRecord, TaskError>
    ) {
        let outcome: Result<TaskRecord, TaskError> = state.withLock { state in
            guard let old = state.tasks[taskID] else { return .failure(TaskError.noSuchTask(taskID)) }
            let outcome = next(old)
            if case .success(let new) = outcome { commit(&state, new) }
            return outcome
        }
        feed.deliver()
        completion(outcome)
    }

    /// Stores a changed task and queues it for the change feed, in commit order.
    private func commit(_ state: inout InMemoryQueueState, _ task: TaskRecord) {
        state.store(task)
        feed.enqueue([task])
    }
}

/// The in-memory queue's tasks and indexes, guarded by its mutex. The indexes use lazy
/// deletion: an entry whose task has moved on is skipped when it surfaces.
struct InMemoryQueueState {
    struct PendingEntry {
        var key: TaskRules.FetchKey
        var version: Int64
    }

    struct LeaseEntry {
        var expiresAtMs: Int64
        var taskID: String
        var leaseID: String
    }

    struct PendingAgeEntry {
        var updatedAtMs: Int64
        var taskID: String
        var version: Int64
    }

    struct FinishedEntry {
        var updatedAtMs: Int64
        var taskID: String
    }

    /// An idempotency key within its owner's tasks.
    struct OwnedKey: Hashable {
        var owner: String
        var key: String
    }

    var tasks: [String: TaskRecord] = [:]
    var idempotency: [OwnedKey: String] = [:]
    /// PENDING tasks per workflow, in fetch order.
    var pending: [String: PriorityHeap<PendingEntry>] = [:]
    var leaseExpiries = PriorityHeap<LeaseEntry> { $0.expiresAtMs < $1.expiresAtMs }
    /// PENDING tasks, longest waiting first, for the PENDING age limit (kept only with one).
    /// Its stale entries surface only once as old as the limit, so it is compacted when they
    /// outnumber the PENDING tasks.
    let tracksPendingAge: Bool
    var pendingByAge = PriorityHeap<PendingAgeEntry> { $0.updatedAtMs < $1.updatedAtMs }
    /// The quotas' counts, kept exact by `store` and `forget`: open (PENDING or PROCESSING)
    /// tasks per owner, and PENDING tasks.
    var openTasksByOwner: [String: Int] = [:]
    var pendingCount = 0
    /// Finished tasks, least recently changed first, for retention.
    var finishedByAge = PriorityHeap<FinishedEntry> { $0.updatedAtMs < $1.updatedAtMs }
    /// ListTasks' and GetQueueStats' indexes.
    var listing = InMemoryListingIndex()

    /// Stores `task` and adds it to the index its state belongs in.
    mutating func store(_ task: TaskRecord) {
        let old = tasks[task.taskID]
        if let old { uncount(old) }
        count(task)
        tasks[task.taskID] = task
        listing.stored(task, replacing: old, pendingCount: pendingCount, tasks: tasks)
        if let key = task.idempotencyKey { idempotency[OwnedKey(owner: task.owner, key: key)] = task.taskID }
        switch task.state {
        case .pending:
            pending[task.workflow, default: PriorityHeap { TaskRules.precedes($0.key, $1.key) }].push(
                PendingEntry(key: (task.priority, task.createdAtMs, task.taskID), version: task.version))
            if tracksPendingAge { trackPendingAge(of: task) }
        case .processing:
            if let lease = task.lease {
                leaseExpiries.push(LeaseEntry(expiresAtMs: lease.expiresAtMs, taskID: task.taskID, leaseID: lease.id))
            }
        case .completed, .failed, .cancelled:
            finishedByAge.push(FinishedEntry(updatedAtMs: task.updatedAtMs, taskID: task.taskID))
        }
    }

    mutating func forget(_ task: TaskRecord) {
        uncount(task)
        tasks[task.taskID] = nil
        listing.forgot(task, tasks: tasks)
        if let key = task.idempotencyKey, idempotency[OwnedKey(owner: task.owner, key: key)] == task.taskID {
            idempotency[OwnedKey(owner: task.owner, key: key)] = nil
        }
    }

    private mutating func trackPendingAge(of task: TaskRecord) {
        pendingByAge.push(PendingAgeEntry(updatedAtMs: task.updatedAtMs, taskID: task.taskID, version: task.version))
        guard pendingByAge.count > 2 * pendingCount + 1_024 else { return }
        pendingByAge.removeAll { entry in
            guard let task = tasks[entry.taskID] else { return true }
            return task.state != .pending || task.version != entry.version
        }
    }

    private mutating func count(_ task: TaskRecord) {
        if task.state == .pending { pendingCount += 1 }
        if !task.state.isTerminal { openTasksByOwner[task.owner, default: 0] += 1 }
    }

    private mutating func uncount(_ task: TaskRecord) {
        if task.state == .pending { pendingCount -= 1 }
        guard !task.state.isTerminal else { return }
        openTasksByOwner[task.owner]! -= 1
        if openTasksByOwner[task.owner] == 0 { openTasksByOwner[task.owner] = nil }
    }

    /// The first PENDING task of `workflows` in fetch order.
    mutating func nextPending(in workflows: Set<String>) -> TaskRecord? {
        var best: TaskRecord?
        for workflow in workflows {
            guard let top = validTop(of: workflow) else { continue }
            if best == nil || TaskRules.precedes(top, best!) { best = top }
        }
        return best
    }

    /// The top of a workflow's queue after dropping entries whose task has moved on.
    private mutating func validTop(of workflow: String) -> TaskRecord? {
        while let entry = pending[workflow]?.top {
            if let task = tasks[entry.key.taskID], task.state == .pending, task.version == entry.version {
                return task
            }
            pending[workflow]!.pop()
        }
        return nil
    }
}

extension TaskError {
    /// The answer for a task id nobody stored (or retention deleted).
    public static func noSuchTask(_ id: String) -> TaskError {
        TaskError(.notFound, "task '\(id)' does not exist")
    }
}
