import CSQLite

/// A value bound to a statement parameter.
enum SQLiteValue {
    case integer(Int64)
    case real(Double)
    case text(String)
    case null
}

/// One prepared statement, the only owner of its `sqlite3_stmt` pointer; used by the owner of
/// its connection only.
final class SQLiteStatement {
    private let handle: OpaquePointer
    /// Borrowed for error messages: the connection outlives its statements (see its deinit).
    private let connection: OpaquePointer

    init(handle: OpaquePointer, connection: OpaquePointer) {
        self.handle = handle
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    /// Resets the statement and binds `values` to its parameters `?1`, `?2`, … in order.
    func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
            case .real(let number): code = sqlite3_bind_double(handle, index, number)
            case .text(let text): code = sqlite3_bind_text(handle, index, text, -1, Self.transient)
            case .null: code = sqlite3_bind_null(handle, index)
            }
            guard code == SQLITE_OK else { throw SQLiteError(code: code, connection: connection) }
        }
    }

    /// Advances to the next row: `true` with a row to read, `false` when done.
    func step() throws(SQLiteError) -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            // The statement's own error code; reset makes it reusable after a failure.
            sqlite3_reset(handle)
            throw SQLiteError(code: code, connection: connection)
        }
    }

    /// Ends the statement's run, so its connection holds no read snapshot open in between.
    func reset() { sqlite3_reset(handle) }

    /// Runs a statement that returns no rows.
    func run(_ values: [SQLiteValue]) throws(SQLiteError) {
        try bind(values)
        while try step() {}
    }

    func integer(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func real(at column: Int32) -> Double { sqlite3_column_double(handle, column) }

    func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func text(at column: Int32) -> String {
        // Ask for the text first: the byte count is only valid after the conversion to text.
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func optionalText(at column: Int32) -> String? { isNull(at: column) ? nil : text(at: column) }

    /// SQLite copies bound text before the call returns (Swift's temporary C string dies then).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
