import CSQLite

/// One open database handle, the only owner of its `sqlite3` pointer. Not thread-safe: it is
/// opened in SQLite's multi-thread mode (no internal mutex), so its owner must serialize every
/// use (`SQLiteTaskQueue` touches each of its connections from one serial queue only).
final class SQLiteConnection {
    private let handle: OpaquePointer
    let path: String

    /// Opens the database file at `path`: read-write, creating it when missing, or read-only.
    init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        var opened: OpaquePointer?
        let access = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        let flags = access | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let code = sqlite3_open_v2(path, &opened, flags, nil)
        guard code == SQLITE_OK, let opened else {
            let error = SQLiteError(code: code, connection: opened)
            sqlite3_close_v2(opened)
            throw error
        }
        self.handle = opened
        self.path = path
    }

    deinit {
        // close_v2 defers the close until every statement of this connection is finalized,
        // so the order in which the owners of statements and connection go away is free.
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws(SQLiteError) {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw SQLiteError(code: code, connection: handle) }
    }

    func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else { throw SQLiteError(code: code, connection: handle) }
        return SQLiteStatement(handle: statement, connection: handle)
    }

    /// The first column of every row `sql` returns, as text (for PRAGMAs such as `quick_check`).
    func textColumn(_ sql: String) throws(SQLiteError) -> [String] {
        let statement = try prepare(sql)
        var values: [String] = []
        while try statement.step() { values.append(statement.text(at: 0)) }
        return values
    }

    /// The first column of the first row `sql` returns, as an integer (0 for no row).
    func integer(_ sql: String) throws(SQLiteError) -> Int64 {
        let statement = try prepare(sql)
        return try statement.step() ? statement.integer(at: 0) : 0
    }

    /// Waits up to `milliseconds` for another connection's lock instead of failing at once.
    func setBusyTimeout(milliseconds: Int32) throws(SQLiteError) {
        let code = sqlite3_busy_timeout(handle, milliseconds)
        guard code == SQLITE_OK else { throw SQLiteError(code: code, connection: handle) }
    }

    /// Whether a transaction is open (after a failed statement SQLite may already have rolled back).
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
}
