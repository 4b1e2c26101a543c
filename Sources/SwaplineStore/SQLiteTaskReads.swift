import SwaplineCore

/// The queries of the task queue, prepared once on one connection: the writer's (inside its
/// transactions) or the reader's (committed state only, for GetTask and watches).
final class SQLiteTaskReads {
    private let byID: SQLiteStatement
    private let byIdempotencyKey: SQLiteStatement
    private let firstPending: SQLiteStatement
    private let expiredLeases: SQLiteStatement
    private let byStateAndAge: SQLiteStatement
    private let inIDOrder: SQLiteStatement
    private let openTasksOfOwner: SQLiteStatement
    private let pendingTasks: SQLiteStatement
    private let pageOfState: SQLiteStatement
    private let pageOfOwnerAndState: SQLiteStatement
    private let counts: SQLiteStatement
    private let oldestPending: SQLiteStatement
    private let oldestPendingOfOwner: SQLiteStatement
    private let finishedSince: SQLiteStatement
    private let finishedSinceOfOwner: SQLiteStatement

    private static let select = "SELECT \(SQLiteTaskDatabase.columns.joined(separator: ", ")) FROM tasks"

    /// Every query, each answered from one index (a test checks the query plans; INDEXED BY
    /// keeps the planner from preferring a shorter equality match and sorting): none costs
    /// more as the stored history grows. The ordered ones walk their index in order and stop
    /// at the limit (tasks_in_fetch_order, tasks_by_lease_expiry, tasks_by_age, and for
    /// listing tasks_by_state_and_creation and tasks_by_owner_state_and_creation, newest first
    /// from the cursor); the count of an owner's open tasks stops at its limit
    /// (tasks_by_owner_state_and_creation); the last minute's finishes are a range of
    /// tasks_by_age or tasks_finished_by_owner. The queue's length and the counts per owner,
    /// workflow and state are rows kept by triggers (`pendingTasks`, `counts`, not an index).
    static let queries = (
        byID: "\(select) WHERE task_id = ?1",
        byIdempotencyKey: "\(select) WHERE owner = ?1 AND idempotency_key = ?2",
        firstPending: "\(select) INDEXED BY tasks_in_fetch_order WHERE workflow = ?1 AND state = 'PENDING' ORDER BY priority DESC, created_at, task_id LIMIT 1",
        expiredLeases: "\(select) INDEXED BY tasks_by_lease_expiry WHERE state = 'PROCESSING' AND lease_expires_at <= ?1 ORDER BY lease_expires_at LIMIT ?2",
        byStateAndAge: "\(select) INDEXED BY tasks_by_age WHERE state = ?1 AND updated_at < ?2 ORDER BY updated_at LIMIT ?3",
        inIDOrder: "\(select) WHERE task_id > ?1 ORDER BY task_id LIMIT ?2",
        openTasksOfOwner:
            "SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_owner_state_and_creation WHERE owner = ?1 AND state IN ('PENDING', 'PROCESSING') LIMIT ?2)",
        pendingTasks: "SELECT pending FROM queue_length",
        // ?1 state, ?2 and ?3 the position to continue after (created_at, task_id), ?4 the
        // earliest created_at, ?5 the limit, ?6 workflow and ?7 idempotency key (NULL: any).
        pageOfState:
            "\(select) INDEXED BY tasks_by_state_and_creation WHERE state = ?1 AND (created_at, task_id) < (?2, ?3) AND created_at >= ?4 AND (?6 IS NULL OR workflow = ?6) AND (?7 IS NULL OR idempotency_key = ?7) ORDER BY created_at DESC, task_id DESC LIMIT ?5",
        pageOfOwnerAndState:
            "\(select) INDEXED BY tasks_by_owner_state_and_creation WHERE owner = ?8 AND state = ?1 AND (created_at, task_id) < (?2, ?3) AND created_at >= ?4 AND (?6 IS NULL OR workflow = ?6) AND (?7 IS NULL OR idempotency_key = ?7) ORDER BY created_at DESC, task_id DESC LIMIT ?5",
        // ?1 owner, ?2 workflow (NULL: any).
        counts:
            "SELECT workflow, state, sum(count) FROM task_counts WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR workflow = ?2) GROUP BY workflow, state HAVING sum(count) > 0",
        oldestPending:
            "SELECT created_at FROM tasks INDEXED BY tasks_by_state_and_creation WHERE state = 'PENDING' AND (?1 IS NULL OR workflow = ?1) ORDER BY created_at, task_id LIMIT 1",
        oldestPendingOfOwner:
            "SELECT created_at FROM tasks INDEXED BY tasks_by_owner_state_and_creation WHERE owner = ?2 AND state = 'PENDING' AND (?1 IS NULL OR workflow = ?1) ORDER BY created_at, task_id LIMIT 1",
        // ?1 since (ms), ?2 workflow (NULL: any), ?3 owner.
        finishedSince:
            "SELECT count(*), coalesce(sum(state = 'FAILED'), 0) FROM tasks INDEXED BY tasks_by_age WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED') AND updated_at >= ?1 AND (?2 IS NULL OR workflow = ?2)",
        finishedSinceOfOwner:
            "SELECT count(*), coalesce(sum(state = 'FAILED'), 0) FROM tasks INDEXED BY tasks_finished_by_owner WHERE owner = ?3 AND state IN ('COMPLETED', 'FAILED', 'CANCELLED') AND updated_at >= ?1 AND (?2 IS NULL OR workflow = ?2)"
    )

    init(connection: SQLiteConnection) throws(SQLiteError) {
        byID = try connection.prepare(Self.queries.byID)
        byIdempotencyKey = try connection.prepare(Self.queries.byIdempotencyKey)
        firstPending = try connection.prepare(Self.queries.firstPending)
        expiredLeases = try connection.prepare(Self.queries.expiredLeases)
        byStateAndAge = try connection.prepare(Self.queries.byStateAndAge)
        inIDOrder = try connection.prepare(Self.queries.inIDOrder)
        openTasksOfOwner = try connection.prepare(Self.queries.openTasksOfOwner)
        pendingTasks = try connection.prepare(Self.queries.pendingTasks)
        pageOfState = try connection.prepare(Self.queries.pageOfState)
        pageOfOwnerAndState = try connection.prepare(Self.queries.pageOfOwnerAndState)
        counts = try connection.prepare(Self.queries.counts)
        oldestPending = try connection.prepare(Self.queries.oldestPending)
        oldestPendingOfOwner = try connection.prepare(Self.queries.oldestPendingOfOwner)
        finishedSince = try connection.prepare(Self.queries.finishedSince)
        finishedSinceOfOwner = try connection.prepare(Self.queries.finishedSinceOfOwner)
    }

    /// A page of `query`: up to `limit + 1` tasks of each listed state, read newest first from
    /// the cursor, merged into listing order.
    func page(_ query: TaskListQuery) throws(SQLiteError) -> TaskPage {
        if let keyed = query.ownedKey { return query.page(ofKeyed: try task(owner: keyed.owner, idempotencyKey: keyed.key)) }
        let filter = query.filter
        let start = query.start
        let optional: (String?) -> SQLiteValue = { $0.map { .text($0) } ?? .null }
        var values: [SQLiteValue] = [
            .null, .integer(start.createdAtMs), .text(start.taskID), .integer(filter.createdAfterMs ?? Int64.min),
            .integer(Int64(query.limit + 1)), optional(filter.workflow), optional(filter.idempotencyKey),
        ]
        let statement: SQLiteStatement
        switch query.scope {
        case .everyone: statement = pageOfState
        case .owner(let owner):
            statement = pageOfOwnerAndState
            values.append(.text(owner))
        }
        var candidates: [TaskRecord] = []
        for state in filter.statesToList {
            values[0] = .text(state.rawValue)
            candidates += try rows(statement, values)
        }
        return TaskPage(candidates: candidates, limit: query.limit)
    }

    /// The statistics of `scope`'s tasks (of `workflow`, when set).
    func stats(scope: TaskScope, workflow: String?, finishedSinceMs: Int64) throws(SQLiteError) -> TaskStoreStats {
        var owner: SQLiteValue = .null
        if case .owner(let name) = scope { owner = .text(name) }
        let workflowValue: SQLiteValue = workflow.map { .text($0) } ?? .null
        var stats = TaskStoreStats()
        try counts.bind([owner, workflowValue])
        do {
            defer { counts.reset() }
            while try counts.step() {
                guard let state = TaskState(rawValue: counts.text(at: 1)) else { continue }
                stats.counts[TaskStoreStats.Key(workflow: counts.text(at: 0), state: state)] = counts.integer(at: 2)
            }
        }
        let isEveryone = scope == .everyone
        let oldest = isEveryone ? oldestPending : oldestPendingOfOwner
        try oldest.bind(isEveryone ? [workflowValue] : [workflowValue, owner])
        do {
            defer { oldest.reset() }
            if try oldest.step() { stats.oldestPendingCreatedAtMs = oldest.integer(at: 0) }
        }
        let finished = isEveryone ? finishedSince : finishedSinceOfOwner
        try finished.bind(isEveryone ? [.integer(finishedSinceMs), workflowValue] : [.integer(finishedSinceMs), workflowValue, owner])
        defer { finished.reset() }
        if try finished.step() {
            stats.finishedSince = finished.integer(at: 0)
            stats.failedSince = finished.integer(at: 1)
        }
        return stats
    }

    func task(id: String) throws(SQLiteError) -> TaskRecord? {
        try rows(byID, [.text(id)]).first
    }

    func task(owner: String, idempotencyKey: String) throws(SQLiteError) -> TaskRecord? {
        try rows(byIdempotencyKey, [.text(owner), .text(idempotencyKey)]).first
    }

    /// The PENDING task of `workflow` that is fetched next.
    func firstPending(workflow: String) throws(SQLiteError) -> TaskRecord? {
        try rows(firstPending, [.text(workflow)]).first
    }

    /// PROCESSING tasks whose lease ran out by `nowMs`, earliest first.
    func expiredLeases(nowMs: Int64, limit: Int) throws(SQLiteError) -> [TaskRecord] {
        try rows(expiredLeases, [.integer(nowMs), .integer(Int64(limit))])
    }

    /// Up to `limit` finished tasks unchanged since `cutoffMs`, least recently changed first
    /// (one query per terminal state, so each walks its part of tasks_by_age in order).
    func finished(changedBeforeMs cutoffMs: Int64, limit: Int) throws(SQLiteError) -> [TaskRecord] {
        var found: [TaskRecord] = []
        for state in TaskState.allCases where state.isTerminal {
            found += try rows(byStateAndAge, [.text(state.rawValue), .integer(cutoffMs), .integer(Int64(limit))])
        }
        return Array(found.sorted { $0.updatedAtMs < $1.updatedAtMs }.prefix(limit))
    }

    /// Up to `limit` PENDING tasks unchanged since `cutoffMs`, longest waiting first.
    func pending(changedBeforeMs cutoffMs: Int64, limit: Int) throws(SQLiteError) -> [TaskRecord] {
        try rows(byStateAndAge, [.text(TaskState.pending.rawValue), .integer(cutoffMs), .integer(Int64(limit))])
    }

    /// The open (PENDING or PROCESSING) tasks of `owner`, counted up to `limit`.
    func openTaskCount(owner: String, limit: Int) throws(SQLiteError) -> Int {
        try count(openTasksOfOwner, [.text(owner), .integer(Int64(limit))])
    }

    /// The PENDING tasks.
    func pendingTaskCount() throws(SQLiteError) -> Int {
        try count(pendingTasks, [])
    }

    /// Up to `limit` tasks whose ids sort after `afterTaskID`, in id order (an export's pages).
    func tasks(after afterTaskID: String, limit: Int) throws(SQLiteError) -> [TaskRecord] {
        try rows(inIDOrder, [.text(afterTaskID), .integer(Int64(limit))])
    }

    private func count(_ statement: SQLiteStatement, _ values: [SQLiteValue]) throws(SQLiteError) -> Int {
        try statement.bind(values)
        defer { statement.reset() }
        _ = try statement.step()
        return Int(statement.integer(at: 0))
    }

    private func rows(_ statement: SQLiteStatement, _ values: [SQLiteValue]) throws(SQLiteError) -> [TaskRecord] {
        try statement.bind(values)
        var records: [TaskRecord] = []
        defer { statement.reset() }
        while try statement.step() { records.append(SQLiteTaskRows.record(from: statement)) }
        return records
    }
}
