import Dispatch
import Synchronization
import SwaplineCore

/// The durable task store: one SQLite database (`tasks.db`, WAL mode) in a data directory
/// that one server at a time may use.
///
/// Writes never touch the disk on the caller's thread: they are queued, and a writer queue of
/// the store's own commits everything queued so far in one transaction (group commit), then
/// runs the completions of that transaction. While one commit waits for its fsync, the next
/// batch gathers, so under concurrency callers share fsyncs instead of queueing for one each.
public final class SQLiteTaskStore: TaskStore {
    public struct Configuration: Sendable {
        /// The data directory; created when missing. The database and the lock file live in it.
        public var directory: String
        public var synchronous: SQLiteSynchronous = .full
        /// One transaction for everything queued (on), or one per `write` call (off: only to
        /// measure what group commit saves).
        public var groupCommit = true

        public init(directory: String) { self.directory = directory }
    }

    public static let databaseFileName = "tasks.db"

    public let databasePath: String
    private let groupCommit: Bool
    /// Released by `close` (after the database), or when the store goes away.
    private let directoryLock: Mutex<DataDirectoryLock?>
    /// `nil` once closed. Used on `writer` only, except before the first write (`loadAll`).
    private let database: Mutex<SQLiteTaskDatabase?>
    private let queue = Mutex(QueuedWrites())
    private let writer = DispatchQueue(label: "swapline.sqlite-writer")
    private let transactions = Atomic<Int>(0)

    /// Locks the data directory, then opens (or creates) the database and checks it.
    public init(configuration: Configuration) throws(TaskStoreOpenError) {
        let lock = try DataDirectoryLock(directory: configuration.directory)
        databasePath = configuration.directory + "/" + Self.databaseFileName
        groupCommit = configuration.groupCommit
        directoryLock = Mutex(lock)
        database = Mutex(try SQLiteTaskDatabase(path: databasePath, synchronous: configuration.synchronous))
    }

    /// Transactions committed or attempted so far; with group commit, fewer than writes.
    public var transactionCount: Int { transactions.load(ordering: .relaxed) }

    public func loadAll() throws -> [TaskRecord] {
        try database.withLock { database in
            guard let database else { throw Self.closedError }
            return try database.loadAll()
        }
    }

    public func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        enqueue(QueuedWrite(operation: .save(records), completion: completion))
    }

    public func delete(_ taskIDs: [String], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        enqueue(QueuedWrite(operation: .delete(taskIDs), completion: completion))
    }

    /// Commits what is queued, moves the write-ahead log into the database file and releases
    /// the data directory. Writes after this fail with UNAVAILABLE. Waits for the writer, so
    /// it must not be called from a write's completion.
    public func close() {
        queue.withLock { $0.isClosed = true }
        // The writer drains everything queued before `isClosed` was set, then runs this.
        writer.sync {
            database.withLock { database in
                // A log left behind is replayed at the next open; nothing is lost without this.
                try? database?.checkpoint()
                database = nil
            }
        }
        directoryLock.withLock { $0 = nil }
    }

    // MARK: - The writer

    private func enqueue(_ write: QueuedWrite) {
        enum Next { case refuse, wait, startWriter }
        let next: Next = queue.withLock { queued in
            if queued.isClosed { return .refuse }
            queued.writes.append(write)
            if queued.isWriterRunning { return .wait }
            queued.isWriterRunning = true
            return .startWriter
        }
        switch next {
        case .refuse: write.completion(.failure(Self.closedError))
        case .wait: break
        case .startWriter: writer.async { self.commitQueuedWrites() }
        }
    }

    /// Runs on `writer` until nothing is queued.
    private func commitQueuedWrites() {
        while let batch = takeBatch() {
            let outcomes = database.withLock { database -> [Result<Void, TaskStoreError>] in
                guard let database else { return Array(repeating: .failure(Self.closedError), count: batch.count) }
                let outcomes = database.commit(batch.map(\.operation))
                if batch.contains(where: \.isDeletion) {
                    // Best effort: pages that stay free now are reclaimed after a later deletion.
                    try? database.reclaimFreePages()
                }
                return outcomes
            }
            transactions.add(1, ordering: .relaxed)
            for (write, outcome) in zip(batch, outcomes) { write.completion(outcome) }
        }
    }

    private func takeBatch() -> [QueuedWrite]? {
        queue.withLock { queued in
            guard !queued.writes.isEmpty else {
                queued.isWriterRunning = false
                return nil
            }
            guard groupCommit else { return [queued.writes.removeFirst()] }
            defer { queued.writes.removeAll(keepingCapacity: true) }
            return queued.writes
        }
    }

    private static let closedError = TaskStoreError(.unavailable, "the task store is closed")

    // MARK: - Test hooks

    /// Caps the database at `pages` pages: writes beyond fail as if the disk were full.
    func limitSize(toPages pages: Int) throws {
        try database.withLock { try $0?.limitSize(toPages: pages) }
    }

    /// The database's size in pages.
    func pageCount() throws -> Int64 {
        try database.withLock { try $0?.pageCount() ?? 0 }
    }
}

private struct QueuedWrite: Sendable {
    var operation: SQLiteTaskOperation
    var completion: @Sendable (Result<Void, TaskStoreError>) -> Void

    var isDeletion: Bool {
        if case .delete = operation { return true }
        return false
    }
}

/// Writes waiting for the writer, guarded by the store's `queue` mutex.
private struct QueuedWrites {
    var writes: [QueuedWrite] = []
    /// A `commitQueuedWrites` run is scheduled or running; it takes every write queued
    /// before it finds the queue empty and clears this.
    var isWriterRunning = false
    var isClosed = false
}
