/// Whose tasks a listing or the statistics cover: a client token sees its own (the `owner`
/// its creates stored), an admin token and a server without tokens every task.
public enum TaskScope: Sendable, Hashable {
    case everyone
    case owner(String)

    public func includes(_ task: TaskRecord) -> Bool {
        switch self {
        case .everyone: return true
        case .owner(let owner): return task.owner == owner
        }
    }
}

/// The filters of a task listing (ListTasks); every one that is set must match.
public struct TaskListFilter: Sendable, Hashable {
    /// Empty: every state.
    public var states: Set<TaskState>
    public var workflow: String?
    /// Created at or after, ms since the Unix epoch.
    public var createdAfterMs: Int64?
    /// Created before, ms since the Unix epoch.
    public var createdBeforeMs: Int64?
    public var idempotencyKey: String?

    public init(
        states: Set<TaskState> = [], workflow: String? = nil, createdAfterMs: Int64? = nil, createdBeforeMs: Int64? = nil,
        idempotencyKey: String? = nil
    ) {
        self.states = states
        self.workflow = workflow
        self.createdAfterMs = createdAfterMs
        self.createdBeforeMs = createdBeforeMs
        self.idempotencyKey = idempotencyKey
    }

    /// The states to look in, in a fixed order: the given ones, or all.
    public var statesToList: [TaskState] { TaskState.allCases.filter { states.isEmpty || states.contains($0) } }

    public func matches(_ task: TaskRecord) -> Bool {
        (states.isEmpty || states.contains(task.state)) && (workflow.map { $0 == task.workflow } ?? true)
            && (createdAfterMs.map { task.createdAtMs >= $0 } ?? true) && (createdBeforeMs.map { task.createdAtMs < $0 } ?? true)
            && (idempotencyKey.map { $0 == task.idempotencyKey } ?? true)
    }

    /// A hash of the filters (FNV-1a over a canonical text), stable across processes and
    /// builds: a page token carries it, so a token is only accepted with its own filters.
    public var fingerprint: UInt64 {
        let parts = [
            statesToList.map(\.rawValue).joined(separator: ","), workflow ?? "", createdAfterMs.map { "\($0)" } ?? "",
            createdBeforeMs.map { "\($0)" } ?? "", idempotencyKey ?? "",
        ]
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in parts.joined(separator: "\u{1F}").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// A position in the listing order, newest first: creation time, then task id, both
/// descending. A page continues with the tasks after (older than) its cursor.
public struct TaskListCursor: Sendable, Hashable {
    public var createdAtMs: Int64
    public var taskID: String

    public init(createdAtMs: Int64, taskID: String) {
        self.createdAtMs = createdAtMs
        self.taskID = taskID
    }

    public init(_ task: TaskRecord) { self.init(createdAtMs: task.createdAtMs, taskID: task.taskID) }

    /// Whether `task` comes after this position in the listing order.
    public func precedes(_ task: TaskRecord) -> Bool {
        task.createdAtMs < createdAtMs || (task.createdAtMs == createdAtMs && task.taskID < taskID)
    }

    /// Listing order: newest first, then the larger id.
    public static func listsBefore(_ a: TaskRecord, _ b: TaskRecord) -> Bool {
        a.createdAtMs != b.createdAtMs ? a.createdAtMs > b.createdAtMs : a.taskID > b.taskID
    }
}

/// One page's request to a backend.
public struct TaskListQuery: Sendable, Hashable {
    public var scope: TaskScope
    public var filter: TaskListFilter
    /// The last task of the previous page; `nil` for the first page.
    public var after: TaskListCursor?
    /// Tasks to answer at most; the backend reads one more to know whether another page follows.
    public var limit: Int

    public init(scope: TaskScope, filter: TaskListFilter = TaskListFilter(), after: TaskListCursor? = nil, limit: Int) {
        self.scope = scope
        self.filter = filter
        self.after = after
        self.limit = limit
    }

    /// Where the page starts, exclusive: after the cursor, or at `createdBeforeMs` when that
    /// comes first ("" sorts before every id, so no task of that millisecond is included).
    public var start: TaskListCursor {
        let bound = TaskListCursor(createdAtMs: filter.createdBeforeMs ?? Int64.max, taskID: "")
        guard let after, after.createdAtMs < bound.createdAtMs else { return bound }
        return after
    }

    /// The owner and key when the query asks for one client's task by idempotency key: at most
    /// one task matches, which the backends look up by key instead of walking the listing.
    public var ownedKey: (owner: String, key: String)? {
        guard case .owner(let owner) = scope, let key = filter.idempotencyKey else { return nil }
        return (owner, key)
    }

    /// The page of an `ownedKey` query, given the task stored under the key.
    public func page(ofKeyed task: TaskRecord?) -> TaskPage {
        guard let task, filter.matches(task), after.map({ $0.precedes(task) }) ?? true else { return TaskPage(tasks: [], next: nil) }
        return TaskPage(tasks: [task], next: nil)
    }
}

/// A page of tasks in listing order; `next` is set when more follow.
public struct TaskPage: Sendable, Hashable {
    public var tasks: [TaskRecord]
    public var next: TaskListCursor?

    public init(tasks: [TaskRecord], next: TaskListCursor?) {
        self.tasks = tasks
        self.next = next
    }

    /// The page out of up to `limit + 1` candidates in listing order.
    public init(candidates: [TaskRecord], limit: Int) {
        let sorted = candidates.sorted(by: TaskListCursor.listsBefore)
        tasks = Array(sorted.prefix(limit))
        next = sorted.count > limit ? tasks.last.map(TaskListCursor.init) : nil
    }
}

/// What a backend counts for the statistics (GetQueueStats), each from an index or a table
/// kept in the same transaction as the tasks, never by reading every task.
public struct TaskStoreStats: Sendable, Hashable {
    public struct Key: Sendable, Hashable {
        public var workflow: String
        public var state: TaskState

        public init(workflow: String, state: TaskState) {
            self.workflow = workflow
            self.state = state
        }
    }

    /// Tasks per workflow and state; pairs with no task are absent.
    public var counts: [Key: Int64]
    /// Creation time of the oldest PENDING task; `nil` when none is pending.
    public var oldestPendingCreatedAtMs: Int64?
    /// Tasks that reached a terminal state since the requested time, and how many of them FAILED.
    public var finishedSince: Int64
    public var failedSince: Int64

    public init(counts: [Key: Int64] = [:], oldestPendingCreatedAtMs: Int64? = nil, finishedSince: Int64 = 0, failedSince: Int64 = 0) {
        self.counts = counts
        self.oldestPendingCreatedAtMs = oldestPendingCreatedAtMs
        self.finishedSince = finishedSince
        self.failedSince = failedSince
    }
}
