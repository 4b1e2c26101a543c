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
    /// Which source and target URLs CreateTask and ProcessSync accept (`--allow-private-urls`,
    /// `--url-allow-host`, `--url-deny-host`); the worker checks them again when it connects.
    public var urlPolicy = URLPolicy()
    /// Caps on open tasks per client, on the queue's length and on time spent PENDING.
    public var quotas = TaskQuotas()

    public init() {}
}

/// A request to create a task.
public struct CreateTaskCommand: Sendable {
    public var workflow: String
    public var params: FaceSwapParameters
    public var idempotencyKey: String
    public var priority: Int32
    /// The creating client (`TaskRecord.owner`); empty when no token was checked.
    public var owner: String

    public init(
        workflow: String = "", params: FaceSwapParameters, idempotencyKey: String = "", priority: Int32 = 0, owner: String = ""
    ) {
        self.workflow = workflow
        self.params = params
        self.idempotencyKey = idempotencyKey
        self.priority = priority
        self.owner = owner
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
public struct LeaseGrant: Sendable, Equatable {
    public var task: TaskRecord
    public var lease: Lease

    public init(task: TaskRecord, lease: Lease) {
        self.task = task
        self.lease = lease
    }
}

/// Identifies a parked FetchTask or a watcher, to withdraw it.
public struct SchedulerToken: Sendable, Hashable {
    let value: UInt64
}

/// What the server's calls see of the queue: task creation with validation, and the live,
/// bounded part that belongs to this process — consumers waiting in a long poll and open
/// watches — fed by the backend's change feed. Every task lives in the `TaskQueue` backend,
/// which decides each change atomically under `TaskRules`; the scheduler keeps no task.
///
/// Completions and callbacks may run on any thread and must not block.
public final class TaskScheduler: Sendable {
    public typealias Completion<T> = @Sendable (Result<T, TaskError>) -> Void
    public typealias WatchCallback = @Sendable (TaskRecord) -> Void

    /// Expired leases one sweep handles at most; the rest wait for the next sweep.
    static let expiryBatch = 1_000

    public let configuration: SchedulerConfiguration
    public let queue: any TaskQueue
    private let clock: WallClock
    private let ids: SortableIDGenerator
    private let state = Mutex(SchedulerState())

    public init(configuration: SchedulerConfiguration, queue: any TaskQueue, clock: WallClock = .system) {
        self.configuration = configuration
        self.queue = queue
        self.clock = clock
        self.ids = SortableIDGenerator(clock: clock)
        queue.setChangeHandler { [weak self] task in self?.changed(task) }
    }

    /// Sets the unified-format fields stamped on new tasks: the URL (`source_channel`) and
    /// port (`target_port`) of the server they arrived through, known once it has bound.
    public func setOrigin(_ origin: TaskOrigin) {
        state.withLock { $0.origin = origin }
    }

    // MARK: - Clients

    public func task(id: String, completion: @escaping Completion<TaskRecord>) {
        queue.task(id: id) { result in
            completion(result.flatMap { $0.map(Result.success) ?? .failure(TaskError.noSuchTask(id)) })
        }
    }

    public func createTask(_ command: CreateTaskCommand, completion: @escaping Completion<TaskRecord>) {
        let workflow = command.workflow.isEmpty ? "face_swap" : command.workflow
        guard configuration.workflows.contains(workflow) else {
            let known = configuration.workflows.sorted().joined(separator: ", ")
            return completion(.failure(TaskError(.invalidArgument, "workflow '\(workflow)' is not served here (one of: \(known))")))
        }
        let params: FaceSwapParameters
        switch TaskValidation.faceSwapParameters(command.params, policy: configuration.urlPolicy) {
        case .success(let resolved): params = resolved
        case .failure(let error): return completion(.failure(error))
        }
        let now = clock.nowMs()
        let origin = state.withLock { $0.origin }
        let task = TaskRules.created(TaskRecord(
            taskID: "task_" + ids.next(), workflow: workflow, environment: workflow, targetPort: origin.targetPort,
            params: params, state: .pending, sourceChannel: origin.sourceChannel, createdAtMs: now, updatedAtMs: now,
            priority: command.priority, idempotencyKey: command.idempotencyKey.isEmpty ? nil : command.idempotencyKey,
            owner: command.owner))
        queue.create(task) { result in completion(result.map(\.task)) }
    }

    /// Consumers parked in FetchTask on this server now.
    public var waitingConsumers: Int { state.withLock { $0.waiters.count } }

    /// PENDING or PROCESSING becomes CANCELLED; a finished task is answered as it is.
    public func cancelTask(id: String, completion: @escaping Completion<TaskRecord>) {
        queue.cancel(taskID: id, completion: completion)
    }

    /// Registers `onChange` for every committed change of the task, then reads the task and
    /// answers it through `current` (or NOT_FOUND, and the watch is gone). Changes may arrive
    /// before, with or after `current`; `version` orders them and drops repeats.
    @discardableResult
    public func watch(
        taskID: String, onChange: @escaping WatchCallback, current: @escaping Completion<TaskRecord>
    ) -> SchedulerToken {
        let token = state.withLock { state in
            let token = state.makeToken()
            state.watchers[taskID, default: [:]][token] = onChange
            return token
        }
        task(id: taskID) { [self] result in
            if case .failure = result { unwatch(taskID: taskID, token: token) }
            current(result)
        }
        return token
    }

    public func unwatch(taskID: String, token: SchedulerToken) {
        state.withLock { state in
            state.watchers[taskID]?[token] = nil
            if state.watchers[taskID]?.isEmpty == true { state.watchers[taskID] = nil }
        }
    }

    // MARK: - Consumers

    /// Hands out the first PENDING task of `workflows` (all when empty). With nothing queued,
    /// answers `nil` when `waitMs` is 0; otherwise the request waits, and `deliver` runs when a
    /// task arrives for it, unless `cancelWait` withdrew it first. Returns the token to
    /// withdraw it with (`nil` when `waitMs` is 0).
    @discardableResult
    public func fetchTask(
        consumerID: String, workflows: [String], waitMs: Int64, deliver: @escaping Completion<LeaseGrant?>
    ) -> SchedulerToken? {
        guard waitMs >= 0 else {
            deliver(.failure(TaskError(.invalidArgument, "wait_ms must not be negative, got \(waitMs)")))
            return nil
        }
        // Backends claim per named workflow (one index range each); "any" means every one served.
        let filter = workflows.isEmpty ? configuration.workflows : Set(workflows)
        guard waitMs > 0 else {
            queue.claim(workflows: filter, consumerID: consumerID, completion: deliver)
            return nil
        }
        let waiter = Waiter(consumerID: consumerID, workflows: filter, deliver: deliver)
        let token = state.withLock { state in
            let token = state.makeToken()
            state.waiters.append(token, waiter, claiming: true)
            return token
        }
        claim(for: token, waiter)
        return token
    }

    /// Withdraws a waiting fetch; `false` when it was already served (its `deliver` ran or
    /// runs). A task claimed for it meanwhile goes back to the queue.
    public func cancelWait(_ token: SchedulerToken) -> Bool {
        state.withLock { $0.waiters.withdraw(token) }
    }

    /// Takes back a lease whose response never reached the consumer: the task is PENDING
    /// again and the delivery does not count as an attempt.
    public func returnUndelivered(_ grant: LeaseGrant) {
        // On a failed write the lease stays in place and simply expires later.
        queue.handBack(taskID: grant.task.taskID, leaseID: grant.lease.id) { _ in }
    }

    public func updateStatus(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>) {
        queue.update(update, completion: completion)
    }

    // MARK: - Sweeps (the server runs them periodically)

    /// Requeues (or, after `maxAttempts` deliveries, fails) tasks whose lease has run out, and
    /// fails tasks PENDING for longer than `quotas.maxPendingAgeMs`.
    public func expireLeases() {
        // On a failed write the leases stay expired and the next sweep tries again.
        queue.expireLeases(limit: Self.expiryBatch) { _ in }
    }

    /// Deletes up to `limit` finished (COMPLETED, FAILED, CANCELLED) tasks that have not
    /// changed for `ageMs`, oldest first, and reports the tasks that went; fewer than `limit`
    /// means none of that age is left.
    public func purgeFinishedTasks(olderThanMs ageMs: Int64, limit: Int, completion: @escaping Completion<[TaskRecord]>) {
        queue.purgeFinished(changedBeforeMs: clock.nowMs() - ageMs, limit: limit, completion: completion)
    }

    /// For backends whose change feed can miss a change: reads every watched task again and
    /// lets each idle waiting consumer try a claim, so a lost notification only delays.
    public func recheck() {
        let (watched, idle) = state.withLock { state in
            (Array(state.watchers.keys), state.waiters.startClaimingAll())
        }
        for taskID in watched {
            queue.task(id: taskID) { [self] result in
                if case .success(let task?) = result { notifyWatchers(of: task) }
            }
        }
        for (token, waiter) in idle { claim(for: token, waiter) }
    }

    // MARK: - The change feed

    private func changed(_ task: TaskRecord) {
        notifyWatchers(of: task)
        guard task.state == .pending else { return }
        let next = state.withLock { state in
            state.pendingArrivals &+= 1
            return state.waiters.startClaimingFirst(matching: task.workflow)
        }
        if let (token, waiter) = next { claim(for: token, waiter) }
    }

    private func notifyWatchers(of task: TaskRecord) {
        let callbacks = state.withLock { state in state.watchers[task.taskID].map { Array($0.values) } ?? [] }
        for callback in callbacks { callback(task) }
    }

    /// Claims a task for a waiting fetch (marked claiming), and delivers it, or parks the
    /// fetch again when the queue had nothing. A task that became PENDING while the claim ran
    /// may have found no idle waiter to wake, so an empty claim that overlapped one tries again.
    private func claim(for token: SchedulerToken, _ waiter: Waiter) {
        let arrivalsBefore = state.withLock { $0.pendingArrivals }
        queue.claim(workflows: waiter.workflows, consumerID: waiter.consumerID) { [self] result in
            enum Next { case deliver, handBack, retry, parked }
            let next: Next = state.withLock { state in
                switch result {
                case .success(nil):
                    if state.pendingArrivals != arrivalsBefore, state.waiters.isClaiming(token) { return .retry }
                    _ = state.waiters.park(token)
                    return .parked
                case .success, .failure:
                    return state.waiters.remove(token) ? .deliver : .handBack
                }
            }
            switch next {
            case .deliver: waiter.deliver(result)
            case .handBack: if case .success(let grant?) = result { returnUndelivered(grant) }
            case .retry: claim(for: token, waiter)
            case .parked: break
            }
        }
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

struct Waiter: Sendable {
    var consumerID: String
    var workflows: Set<String>
    var deliver: TaskScheduler.Completion<LeaseGrant?>

    func accepts(_ workflow: String) -> Bool { workflows.contains(workflow) }
}

/// The fetches waiting for a task, first come first served. A waiter is idle (parked until
/// a task arrives) or claiming (a claim for it is running in the backend).
struct WaiterList {
    private struct Entry {
        var token: SchedulerToken
        var waiter: Waiter
        var isClaiming: Bool
    }

    private var entries: [Entry] = []

    var count: Int { entries.count }

    mutating func append(_ token: SchedulerToken, _ waiter: Waiter, claiming: Bool) {
        entries.append(Entry(token: token, waiter: waiter, isClaiming: claiming))
    }

    /// Marks the first idle waiter that takes `workflow` as claiming and returns it.
    mutating func startClaimingFirst(matching workflow: String) -> (SchedulerToken, Waiter)? {
        guard let index = entries.firstIndex(where: { !$0.isClaiming && $0.waiter.accepts(workflow) }) else { return nil }
        entries[index].isClaiming = true
        return (entries[index].token, entries[index].waiter)
    }

    /// Marks every idle waiter as claiming and returns them.
    mutating func startClaimingAll() -> [(SchedulerToken, Waiter)] {
        var started: [(SchedulerToken, Waiter)] = []
        for index in entries.indices where !entries[index].isClaiming {
            entries[index].isClaiming = true
            started.append((entries[index].token, entries[index].waiter))
        }
        return started
    }

    func isClaiming(_ token: SchedulerToken) -> Bool {
        entries.contains { $0.token == token && $0.isClaiming }
    }

    /// Makes a claiming waiter idle again; `false` when it was withdrawn meanwhile.
    mutating func park(_ token: SchedulerToken) -> Bool {
        guard let index = entries.firstIndex(where: { $0.token == token }) else { return false }
        entries[index].isClaiming = false
        return true
    }

    /// Takes the waiter out to serve it; `false` when it was withdrawn meanwhile.
    mutating func remove(_ token: SchedulerToken) -> Bool {
        guard let index = entries.firstIndex(where: { $0.token == token }) else { return false }
        entries.remove(at: index)
        return true
    }

    /// The fetch is withdrawn (deadline or client gone); `false` when it is no longer waiting.
    mutating func withdraw(_ token: SchedulerToken) -> Bool { remove(token) }
}

/// The scheduler's live state, guarded by its mutex: bounded by the open calls.
struct SchedulerState {
    var origin = TaskOrigin(sourceChannel: "http://localhost:8000", targetPort: 8000)
    var waiters = WaiterList()
    var watchers: [String: [SchedulerToken: TaskScheduler.WatchCallback]] = [:]
    /// Counts changes that made a task PENDING, so a claim can tell whether one overlapped it.
    var pendingArrivals: UInt64 = 0
    private var lastToken: UInt64 = 0

    mutating func makeToken() -> SchedulerToken {
        lastToken += 1
        return SchedulerToken(value: lastToken)
    }
}
