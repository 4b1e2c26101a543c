import PostgresNIO
import SwaplineCore

/// What went wrong talking to PostgreSQL, in the terms callers act on.
enum PostgresFailure {
    /// SQLSTATEs after which the same transaction may succeed when run again: a serialization
    /// failure or a deadlock the server broke by aborting us.
    private static let retryableStates: Set<String> = ["40001", "40P01"]

    /// The SQLSTATE of an error the server reported; `nil` for connection-level failures.
    static func sqlState(of error: any Error) -> String? {
        guard let error = error as? PSQLError, error.code == .server else { return nil }
        return error.serverInfo?[.sqlState]
    }

    /// The server refused this statement; the connection is fine.
    static func isStatementError(_ error: any Error) -> Bool { sqlState(of: error) != nil }

    static func isRetryable(_ error: any Error) -> Bool {
        sqlState(of: error).map(retryableStates.contains) ?? false
    }

    /// A readable account of `error` that never includes query parameters (task URLs).
    static func explain(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if error.code == .server, let info = error.serverInfo {
            let message = info[.message] ?? "error"
            return "PostgreSQL said: \(message) (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    /// How a failed operation is answered: the database is full is RESOURCE_EXHAUSTED; anything
    /// else (a lost connection, a refused statement) UNAVAILABLE, as the caller may retry.
    static func taskError(_ error: any Error, location: PostgresStoreLocation) -> TaskError {
        if let error = error as? TaskError { return error }
        let state = sqlState(of: error)
        // Class 53: insufficient resources (disk full, out of memory, too many connections).
        if let state, state.hasPrefix("53") {
            return TaskError(.resourceExhausted, "the PostgreSQL store \(location) is out of resources: \(explain(error))")
        }
        if state == nil {
            return TaskError(.unavailable, "the PostgreSQL store \(location) cannot be reached: \(explain(error))")
        }
        return TaskError(.unavailable, "the PostgreSQL store \(location) could not save the change: \(explain(error))")
    }
}

extension PostgresConnection {
    /// Runs `body` between BEGIN and COMMIT, rolling back when it throws; errors are passed on
    /// as they are (postgres-nio's own `withTransaction` wraps them), so callers can tell a
    /// refused statement from a lost connection.
    func inTransaction<T: Sendable>(logger: Logger, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await query("BEGIN", logger: logger)
        do {
            let value = try await body(self)
            try await query("COMMIT", logger: logger)
            return value
        } catch {
            // On a lost connection this fails too, and the server rolls back by itself.
            _ = try? await query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
