import Logging
import PostgresNIO
import SwaplineCore

/// The result lifetime's marks and the result files waiting to be deleted, in PostgreSQL: the
/// statements the queue runs inside its transactions. Every server sweeps at once; rows are
/// taken with `FOR UPDATE SKIP LOCKED`, so no two servers take the same task or file.
enum PostgresResultDeletions {
    /// The schema step that adds them (see `SQLiteResultDeletions.migration`).
    static let migration = [
        "ALTER TABLE swapline_tasks ADD COLUMN files_expired_at bigint",
        """
        CREATE INDEX swapline_tasks_with_live_files ON swapline_tasks (updated_at)
            WHERE state = 'COMPLETED' AND files_expired_at IS NULL
        """,
        """
        CREATE TABLE swapline_result_deletions (
            id          bigserial PRIMARY KEY,
            task_id     text NOT NULL,
            provider    text NOT NULL,
            location    text NOT NULL,
            attempts    integer NOT NULL,
            next_try_at bigint NOT NULL
        )
        """,
        "CREATE INDEX swapline_result_deletions_by_next_try ON swapline_result_deletions (next_try_at)",
    ]

    /// Locks up to `limit` COMPLETED tasks finished before `cutoffMs` with unmarked files,
    /// earliest first, and marks them.
    static func markExpired(
        finishedBeforeMs cutoffMs: Int64, limit: Int, nowMs: Int64, on connection: PostgresConnection, logger: Logger
    ) async throws -> [TaskRecord] {
        let tasks = try await PostgresTaskRows.records(
            connection.query(
                """
                SELECT row_to_json(t)::text FROM swapline_tasks t
                WHERE state = 'COMPLETED' AND files_expired_at IS NULL AND updated_at < \(cutoffMs)
                ORDER BY updated_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """, logger: logger))
        if !tasks.isEmpty {
            try await connection.query(
                "UPDATE swapline_tasks SET files_expired_at = \(nowMs) WHERE task_id = ANY(\(tasks.map(\.taskID))::text[])",
                logger: logger)
        }
        return tasks
    }

    static func record(_ deletions: [ResultDeletion], on connection: PostgresConnection, logger: Logger) async throws {
        guard let dueAtMs = deletions.first?.nextTryAtMs else { return }
        try await connection.query(
            """
            INSERT INTO swapline_result_deletions (task_id, provider, location, attempts, next_try_at)
            SELECT task_id, provider, location, 0, \(dueAtMs)
            FROM unnest(\(deletions.map(\.taskID))::text[], \(deletions.map(\.provider))::text[], \(deletions.map(\.location))::text[])
                AS file(task_id, provider, location)
            """, logger: logger)
    }

    static func claim(
        dueByMs nowMs: Int64, limit: Int, postponedToMs: Int64, on connection: PostgresConnection, logger: Logger
    ) async throws -> [ResultDeletion] {
        var claimed: [ResultDeletion] = []
        for try await (id, taskID, provider, location, attempts) in try await connection.query(
            """
            UPDATE swapline_result_deletions SET next_try_at = \(postponedToMs)
            WHERE id IN (
                SELECT id FROM swapline_result_deletions WHERE next_try_at <= \(nowMs)
                ORDER BY next_try_at, id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING id, task_id, provider, location, attempts
            """, logger: logger
        ).decode((Int64, String, String, String, Int32).self) {
            claimed.append(
                ResultDeletion(
                    id: id, taskID: taskID, provider: provider, location: location, attempts: attempts, nextTryAtMs: postponedToMs))
        }
        return claimed.sorted { $0.id < $1.id }
    }

    static func settle(_ outcomes: [ResultDeletionOutcome], on connection: PostgresConnection, logger: Logger) async throws {
        var finished: [Int64] = []
        for outcome in outcomes {
            switch outcome {
            case .finished(let id):
                finished.append(id)
            case .retry(let id, let attempts, let atMs):
                try await connection.query(
                    "UPDATE swapline_result_deletions SET attempts = \(attempts), next_try_at = \(atMs) WHERE id = \(id)", logger: logger)
            }
        }
        if !finished.isEmpty {
            try await connection.query("DELETE FROM swapline_result_deletions WHERE id = ANY(\(finished)::bigint[])", logger: logger)
        }
    }
}
