import CSQLite

/// One open database handle, the only owner of its `sqlite3` pointer. Not thread-safe: it is
/// opened in SQLite's multi-thread mode (no internal mutex), so its owner must serialize every
/// use (`SQLiteTaskQueue` touches each of its connections from one serial queue only).
final class SQLiteConnection {
    /// How long a statement waits for another connection's (or process's) lock before it fails
    /// with SQLITE_BUSY: long enough for any commit of ours, short enough that a lock held by
    /// a stray process turns into errors (and NOT_SERVING health) instead of calls that hang.
    static let busyTimeoutMs: Int32 = 5_000

    private let handle: OpaquePointer
    let path: String

    /// Opens the database file at `path`: read-write, creating it when missing, or read-only;
    /// with the busy timeout set.
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
        let timeoutCode = sqlite3_busy_timeout(handle, Self.busyTimeoutMs)
        guard timeoutCode == SQLITE_OK else { throw SQLiteError(code: timeoutCode, connection: handle) }
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

    /// Rows inserted, changed or deleted through this connection since it opened.
    var totalChanges: Int64 { sqlite3_total_changes64(handle) }

    /// Whether a transaction is open (after a failed statement SQLite may already have rolled back).
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
}
