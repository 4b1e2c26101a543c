import CSQLite
import SwaplineCore

/// A failed SQLite call: the extended result code and SQLite's own explanation.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The extended result code (`SQLITE_IOERR_WRITE`, …); `primaryCode` is its low byte.
    public let code: Int32
    public let message: String

    init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// The error of the last failed call on `connection`.
    init(code: Int32, connection: OpaquePointer?) {
        let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
        self.init(code: code, message: message)
    }

    public var primaryCode: Int32 { code & 0xff }

    /// No space left: the disk is full or the database reached its page limit.
    public var isOutOfSpace: Bool { primaryCode == SQLITE_FULL }

    /// A constraint of the schema refused one statement; the rest of the transaction is fine.
    public var isConstraintViolation: Bool { primaryCode == SQLITE_CONSTRAINT }

    /// Another connection or process holds the lock we waited for (past the busy timeout).
    public var isLockContention: Bool { primaryCode == SQLITE_BUSY || primaryCode == SQLITE_LOCKED }

    /// The file is damaged or is not a database at all.
    public var isCorruption: Bool { primaryCode == SQLITE_CORRUPT || primaryCode == SQLITE_NOTADB }

    public var description: String { "\(message) (SQLite code \(code))" }

    /// How a failure is reported to callers: out of space is RESOURCE_EXHAUSTED, everything
    /// else (I/O errors, a read-only file, a busy lock, a refused constraint) UNAVAILABLE.
    var taskError: TaskError {
        if isOutOfSpace {
            return TaskError(.resourceExhausted, "the task store could not save the change: the database is out of space: \(description)")
        }
        return TaskError(.unavailable, "the task store could not use the database: \(description)")
    }
}
