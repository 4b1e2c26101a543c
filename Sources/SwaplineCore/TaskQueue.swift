/// What `TaskQueue.create` did with a new task.
public enum CreateOutcome: Sendable, Equatable {
    /// The task is stored as given.
    case created(TaskRecord)
    /// A task with the same idempotency key was stored before; the new one was dropped.
    case existing(TaskRecord)

    public var task: TaskRecord {
        switch self {
        case .created(let task), .existing(let task): return task
        }
    }
}

/// A queue backend: the one owner of every stored task.
///
/// Each operation is atomic in the backend: it reads the task, asks `TaskRules` (given to the
/// backend when it is made) for the next state, writes it and commits, as one step that no
/// other server or thread can interleave with. Only then does it call `completion` and feed the
/// change to the change handler, so nobody is ever told of a change that could still be lost.
///
/// Completions may run on any thread, synchronously inside the call for in-memory backends,
/// and must not block. Failures are `TaskError`s: `.notFound`, the rules' refusals, and
/// `.unavailable` / `.resourceExhausted` when the backend cannot commit (nothing changed then).
public protocol TaskQueue: Sendable {
    typealias Completion<T> = @Sendable (Result<T, TaskError>) -> Void

    /// Stores `task` (PENDING, version 1), unless its idempotency key names a stored task of
    /// the same owner: that one is answered and `task` is dropped. Keys of different owners
    /// never meet. A new task the quotas do not admit (`TaskRules.admit`, counted in the same
    /// atomic step) is refused with RESOURCE_EXHAUSTED.
    func create(_ task: TaskRecord, completion: @escaping Completion<CreateOutcome>)

    /// Leases the first PENDING task of `workflows` (never empty) in fetch order
    /// (`TaskRules.precedes`) to `consumerID`; `nil` when none is pending. Two claims never get the same task, from
    /// whichever server they come.
    func claim(workflows: Set<String>, consumerID: String, completion: @escaping Completion<LeaseGrant?>)

    /// A consumer's report, fenced by its lease (`TaskRules.apply`).
    func update(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>)

    /// Cancels the task (`TaskRules.cancel`) and answers it as it is afterwards.
    func cancel(taskID: String, completion: @escaping Completion<TaskRecord>)

    /// Returns an undelivered lease (`TaskRules.handBack`); `nil` when it was no longer current.
    func handBack(taskID: String, leaseID: String, completion: @escaping Completion<TaskRecord?>)

    /// Requeues or fails tasks whose lease ran out (`TaskRules.expire`), then fails tasks
    /// PENDING for too long (`TaskRules.expirePending`), longest waiting first: up to `limit`
    /// changes in all. Reports how many. Safe to run on every server at once.
    func expireLeases(limit: Int, completion: @escaping Completion<Int>)

    /// Deletes up to `limit` finished tasks unchanged since `cutoffMs`
    /// (`TaskRules.isPurgeable`), oldest first, and reports them as they were (their results
    /// name the stored files that go with them).
    func purgeFinished(changedBeforeMs cutoffMs: Int64, limit: Int, completion: @escaping Completion<[TaskRecord]>)

    /// The stored task, or `nil`.
    func task(id: String, completion: @escaping Completion<TaskRecord?>)

    /// A page of the tasks `query` selects, in listing order (newest first: creation time,
    /// then id, descending), after `query.after`, at most `query.limit`; `next` is set when
    /// more follow. Read from indexes in creation order: a page costs about its size (plus the
    /// tasks the workflow and key filters skip), however many tasks are stored; a client's task
    /// by idempotency key is looked up by key. Tasks created while paging sort
    /// before the cursor, so they never shift later pages.
    func list(_ query: TaskListQuery, completion: @escaping Completion<TaskPage>)

    /// Counts of `scope`'s tasks (of `workflow` only, when set) by workflow and state, the
    /// oldest PENDING task's creation time, and the tasks that finished at or after
    /// `finishedSinceMs` (at most a minute ago), from counters kept in each change's atomic
    /// step and from indexes: never by reading every task.
    func stats(scope: TaskScope, workflow: String?, finishedSinceMs: Int64, completion: @escaping Completion<TaskStoreStats>)

    /// The change feed: `handler` gets every committed change of any task, from this server or
    /// (for shared backends) any other, in commit order per task. Set once, before use.
    func setChangeHandler(_ handler: @escaping @Sendable (TaskRecord) -> Void)

    /// How often the scheduler should re-check waiting consumers and watched tasks because the
    /// change feed can miss a change (a dropped database connection); `nil` when it never does.
    var changeFeedRecheckIntervalMs: Int64? { get }

    /// Whether the backend can currently reach its storage (for SQLite: whether its writes
    /// succeed); health reports NOT_SERVING while not.
    var isReachable: Bool { get }

    /// Finishes pending work and releases the storage. Operations afterwards fail UNAVAILABLE.
    func close() async
}

extension TaskQueue {
    public var changeFeedRecheckIntervalMs: Int64? { nil }
    public var isReachable: Bool { true }
}

/// A backend whose stored tasks can be copied out and in as they are (state, lease, attempts
/// and version included): how a queue moves from one backend to another (`swapline
/// copy-store`). Not part of serving; run it with no server using either store.
public protocol TaskTransfer: TaskQueue {
    /// Up to `limit` stored tasks whose ids sort after `afterTaskID`, in id order; fewer than
    /// `limit` means there are no more.
    func exportTasks(after afterTaskID: String, limit: Int) async throws -> [TaskRecord]

    /// Stores `tasks` as they are. A task already stored under the same id is kept unless the
    /// imported one has a higher version, so running a copy twice changes nothing.
    func importTasks(_ tasks: [TaskRecord]) async throws
}

/// Lease ids come from the system's CSPRNG, so one consumer cannot guess another's lease.
public enum LeaseID {
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let high: UInt64 = generator.next()
        let low: UInt64 = generator.next()
        return "lease_" + hex(high) + hex(low)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// Why a store could not be opened; the server refuses to start and prints it.
public struct TaskStoreOpenError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Another server process holds the data directory.
        case inUse
        /// The file is damaged: not a database, or its integrity check failed.
        case corrupt
        /// The file is a database of some other program.
        case foreign
        /// The file was written by a newer Swapline whose schema this build does not know.
        case newerSchema
        /// The file or directory cannot be created, opened or written.
        case inaccessible
    }

    public var kind: Kind
    /// The file or directory concerned.
    public var path: String
    public var reason: String

    public init(_ kind: Kind, path: String, reason: String) {
        self.kind = kind
        self.path = path
        self.reason = reason
    }

    public var description: String { "cannot use \(path): \(reason)" }
}
