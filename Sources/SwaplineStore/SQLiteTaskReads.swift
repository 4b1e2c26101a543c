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

    private static let select = "SELECT \(SQLiteTaskDatabase.columns.joined(separator: ", ")) FROM tasks"

    /// Every query, each answered from one index (a test checks the query plans; INDEXED BY
    /// keeps the planner from preferring a shorter equality match and sorting): none costs
    /// more as the stored history grows. The ordered ones walk their index in order and stop
    /// at the limit (tasks_in_fetch_order, tasks_by_lease_expiry, tasks_by_age); the count of
    /// an owner's open tasks stops at its limit (tasks_by_owner_and_state). The queue's length
    /// is one row, kept by triggers (`pendingTasks`, not an index).
    static let queries = (
        byID: "\(select) WHERE task_id = ?1",
        byIdempotencyKey: "\(select) WHERE owner = ?1 AND idempotency_key = ?2",
        firstPending: "\(select) INDEXED BY tasks_in_fetch_order WHERE workflow = ?1 AND state = 'PENDING' ORDER BY priority DESC, created_at, task_id LIMIT 1",
        expiredLeases: "\(select) INDEXED BY tasks_by_lease_expiry WHERE state = 'PROCESSING' AND lease_expires_at <= ?1 ORDER BY lease_expires_at LIMIT ?2",
        byStateAndAge: "\(select) INDEXED BY tasks_by_age WHERE state = ?1 AND updated_at < ?2 ORDER BY updated_at LIMIT ?3",
        inIDOrder: "\(select) WHERE task_id > ?1 ORDER BY task_id LIMIT ?2",
        openTasksOfOwner:
            "SELECT count(*) FROM (SELECT 1 FROM tasks INDEXED BY tasks_by_owner_and_state WHERE owner = ?1 AND state IN ('PENDING', 'PROCESSING') LIMIT ?2)",
        pendingTasks: "SELECT pending FROM queue_length"
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
