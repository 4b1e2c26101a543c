import Synchronization

/// Why the store could not commit.
public struct TaskStoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Temporarily unable to write (I/O error, database locked): retry later.
        case unavailable
        /// Out of space or quota.
        case resourceExhausted
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Why a store could not be opened; the server refuses to start and prints it.
public struct TaskStoreOpenError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Another server process holds the data directory.
        case inUse
        /// The file is damaged: not a database, or its integrity check failed.
        case corrupt
        /// The file is a database of some other program.
        case foreign
        /// The file was written by a newer Swapline whose schema this build does not know.
        case newerSchema
        /// The file or directory cannot be created, opened or written.
        case inaccessible
    }

    public var kind: Kind
    /// The file or directory concerned.
    public var path: String
    public var reason: String

    public init(_ kind: Kind, path: String, reason: String) {
        self.kind = kind
        self.path = path
        self.reason = reason
    }

    public var description: String { "cannot use \(path): \(reason)" }
}

/// Durable home of task records. The scheduler keeps the live indexes (queue, leases,
/// waiters) in memory and writes every change here before acknowledging it.
///
/// The scheduler may hand two changes of one task to `write` from different threads in either
/// order, so a store keeps the record with the highest `version` and ignores an older one.
public protocol TaskStore: Sendable {
    /// Every stored task, to rebuild the scheduler's indexes at start.
    func loadAll() throws -> [TaskRecord]

    /// Inserts or replaces `records` (by task id, unless the stored record has a higher
    /// `version`) and calls `completion` once they are committed, or with the reason they
    /// were not. May call back on any thread, including synchronously; must never block the
    /// caller on disk work.
    func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void)

    /// Removes the tasks (retention of finished tasks), with the same completion rules as `write`.
    func delete(_ taskIDs: [String], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void)
}

/// Keeps records in memory, for tests that restart a scheduler on the same store; nothing
/// survives the process.
public final class InMemoryTaskStore: TaskStore {
    private let records = Mutex<[String: TaskRecord]>([:])

    public init() {}

    public func loadAll() throws -> [TaskRecord] {
        records.withLock { Array($0.values) }
    }

    public func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        self.records.withLock { stored in
            for record in records where record.version > stored[record.taskID]?.version ?? .min {
                stored[record.taskID] = record
            }
        }
        completion(.success(()))
    }

    public func delete(_ taskIDs: [String], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        records.withLock { stored in
            for id in taskIDs { stored[id] = nil }
        }
        completion(.success(()))
    }
}
