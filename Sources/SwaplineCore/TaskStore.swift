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

/// Durable home of task records. The scheduler keeps the live indexes (queue, leases,
/// waiters) in memory and writes every change here before acknowledging it.
public protocol TaskStore: Sendable {
    /// Every stored task, to rebuild the scheduler's indexes at start.
    func loadAll() throws -> [TaskRecord]

    /// Inserts or replaces `records` (by task id) and calls `completion` once they are
    /// committed, or with the reason they were not. May call back on any thread, including
    /// synchronously; must never block the caller on disk work.
    func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void)
}

/// Keeps records in memory: nothing survives the process (`--store memory`).
public final class InMemoryTaskStore: TaskStore {
    private let records = Mutex<[String: TaskRecord]>([:])

    public init() {}

    public func loadAll() throws -> [TaskRecord] {
        records.withLock { Array($0.values) }
    }

    public func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        self.records.withLock { stored in
            for record in records { stored[record.taskID] = record }
        }
        completion(.success(()))
    }
}
