import SwaplineCore

/// The queries of the task queue, prepared once on one connection: the writer's (inside its
/// transactions) or the reader's (committed state only, for GetTask and watches).
final class SQLiteTaskReads {
    private let byID: SQLiteStatement
    private let byIdempotencyKey: SQLiteStatement
    private let firstPending: SQLiteStatement
    private let expiredLeases: SQLiteStatement
    private let finishedByAge: SQLiteStatement

    init(connection: SQLiteConnection) throws(SQLiteError) {
        let select = "SELECT \(SQLiteTaskDatabase.columns.joined(separator: ", ")) FROM tasks"
        byID = try connection.prepare("\(select) WHERE task_id = ?1")
        byIdempotencyKey = try connection.prepare("\(select) WHERE idempotency_key = ?1")
        // Each of these walks one index in order and stops at the limit (tasks_in_fetch_order,
        // tasks_by_lease_expiry, tasks_by_age): their cost does not grow with the stored history.
        firstPending = try connection.prepare(
            "\(select) WHERE workflow = ?1 AND state = 'PENDING' ORDER BY priority DESC, created_at, task_id LIMIT 1")
        expiredLeases = try connection.prepare(
            "\(select) WHERE state = 'PROCESSING' AND lease_expires_at <= ?1 ORDER BY lease_expires_at LIMIT ?2")
        finishedByAge = try connection.prepare(
            "\(select) WHERE state = ?1 AND updated_at < ?2 ORDER BY updated_at LIMIT ?3")
    }

    func task(id: String) throws(SQLiteError) -> TaskRecord? {
        try rows(byID, [.text(id)]).first
    }

    func task(idempotencyKey: String) throws(SQLiteError) -> TaskRecord? {
        try rows(byIdempotencyKey, [.text(idempotencyKey)]).first
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
            found += try rows(finishedByAge, [.text(state.rawValue), .integer(cutoffMs), .integer(Int64(limit))])
        }
        return Array(found.sorted { $0.updatedAtMs < $1.updatedAtMs }.prefix(limit))
    }

    private func rows(_ statement: SQLiteStatement, _ values: [SQLiteValue]) throws(SQLiteError) -> [TaskRecord] {
        try statement.bind(values)
        var records: [TaskRecord] = []
        defer { statement.reset() }
        while try statement.step() { records.append(SQLiteTaskRows.record(from: statement)) }
        return records
    }
}
