import SwaplineCore

/// The result lifetime's marks and the result files waiting to be deleted, on the writer's
/// connection (inside its transactions), each statement prepared once.
final class SQLiteResultDeletions {
    /// The schema step that adds them: `files_expired_at` marks a COMPLETED task whose files
    /// the result lifetime queued for deletion (a partial index holds the unmarked ones, in
    /// completion order), and `result_deletions` holds each file until it is deleted.
    static let migration = """
        ALTER TABLE tasks ADD COLUMN files_expired_at INTEGER;
        CREATE INDEX tasks_with_live_files ON tasks (updated_at) WHERE state = 'COMPLETED' AND files_expired_at IS NULL;
        CREATE TABLE result_deletions (
            id          INTEGER PRIMARY KEY,
            task_id     TEXT NOT NULL,
            provider    TEXT NOT NULL,
            location    TEXT NOT NULL,
            attempts    INTEGER NOT NULL,
            next_try_at INTEGER NOT NULL  -- ms since the Unix epoch
        ) STRICT;
        CREATE INDEX result_deletions_by_next_try ON result_deletions (next_try_at);
        """

    /// Each answered from its index (a test checks the query plans).
    static let queries = (
        completedWithLiveFiles:
            "SELECT \(SQLiteTaskDatabase.columns.joined(separator: ", ")) FROM tasks INDEXED BY tasks_with_live_files WHERE state = 'COMPLETED' AND files_expired_at IS NULL AND updated_at < ?1 ORDER BY updated_at LIMIT ?2",
        due: "SELECT id, task_id, provider, location, attempts, next_try_at FROM result_deletions INDEXED BY result_deletions_by_next_try WHERE next_try_at <= ?1 ORDER BY next_try_at, id LIMIT ?2"
    )

    private let completedWithLiveFiles: SQLiteStatement
    private let due: SQLiteStatement
    private let markExpired: SQLiteStatement
    private let insert: SQLiteStatement
    private let reschedule: SQLiteStatement
    private let remove: SQLiteStatement

    init(connection: SQLiteConnection) throws(SQLiteError) {
        completedWithLiveFiles = try connection.prepare(Self.queries.completedWithLiveFiles)
        due = try connection.prepare(Self.queries.due)
        markExpired = try connection.prepare("UPDATE tasks SET files_expired_at = ?2 WHERE task_id = ?1")
        insert = try connection.prepare(
            "INSERT INTO result_deletions (task_id, provider, location, attempts, next_try_at) VALUES (?1, ?2, ?3, ?4, ?5)")
        reschedule = try connection.prepare("UPDATE result_deletions SET attempts = ?2, next_try_at = ?3 WHERE id = ?1")
        remove = try connection.prepare("DELETE FROM result_deletions WHERE id = ?1")
    }

    /// Up to `limit` COMPLETED tasks finished before `cutoffMs` whose files are not marked as
    /// expired, earliest first.
    func completedWithLiveFiles(finishedBeforeMs cutoffMs: Int64, limit: Int) throws(SQLiteError) -> [TaskRecord] {
        try completedWithLiveFiles.bind([.integer(cutoffMs), .integer(Int64(limit))])
        defer { completedWithLiveFiles.reset() }
        var records: [TaskRecord] = []
        while try completedWithLiveFiles.step() { records.append(SQLiteTaskRows.record(from: completedWithLiveFiles)) }
        return records
    }

    func markFilesExpired(taskID: String, atMs: Int64) throws(SQLiteError) {
        try markExpired.run([.text(taskID), .integer(atMs)])
    }

    func record(_ deletions: [ResultDeletion]) throws(SQLiteError) {
        for deletion in deletions {
            try insert.run([
                .text(deletion.taskID), .text(deletion.provider), .text(deletion.location), .integer(Int64(deletion.attempts)),
                .integer(deletion.nextTryAtMs),
            ])
        }
    }

    /// Takes up to `limit` deletions due by `nowMs` and moves their next try to `postponedToMs`.
    func claim(dueByMs nowMs: Int64, limit: Int, postponedToMs: Int64) throws(SQLiteError) -> [ResultDeletion] {
        try due.bind([.integer(nowMs), .integer(Int64(limit))])
        var claimed: [ResultDeletion] = []
        do {
            defer { due.reset() }
            while try due.step() {
                claimed.append(
                    ResultDeletion(
                        id: due.integer(at: 0), taskID: due.text(at: 1), provider: due.text(at: 2), location: due.text(at: 3),
                        attempts: Int32(truncatingIfNeeded: due.integer(at: 4)), nextTryAtMs: due.integer(at: 5)))
            }
        }
        for deletion in claimed {
            try reschedule.run([.integer(deletion.id), .integer(Int64(deletion.attempts)), .integer(postponedToMs)])
        }
        return claimed
    }

    func settle(_ outcomes: [ResultDeletionOutcome]) throws(SQLiteError) {
        for outcome in outcomes {
            switch outcome {
            case .finished(let id): try remove.run([.integer(id)])
            case .retry(let id, let attempts, let atMs): try reschedule.run([.integer(id), .integer(Int64(attempts)), .integer(atMs)])
            }
        }
    }
}
