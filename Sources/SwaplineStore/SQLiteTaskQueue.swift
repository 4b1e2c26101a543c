import Dispatch
import Synchronization
import SwaplineCore

/// The embedded queue backend: one SQLite database (`tasks.db`, WAL mode) in a data directory
/// that one server at a time may use. The database is the only copy of every task; memory
/// holds no task, only operations waiting for the writer.
///
/// Every operation that changes a task runs on the store's writer queue: it reads what it
/// needs, asks `TaskRules`, and writes, all inside the writer's current transaction. The writer
/// takes everything queued so far into one transaction (group commit), commits it, and only
/// then answers each operation and feeds its changes to the change handler. While one commit
/// waits for its fsync, the next batch gathers, so concurrent calls share fsyncs. Reads of
/// committed tasks (GetTask, watches) use a second connection on a queue of their own.
public final class SQLiteTaskQueue: TaskTransfer {
    public struct Configuration: Sendable {
        /// The data directory; created when missing. The database and the lock file live in it.
        public var directory: String
        public var synchronous: SQLiteSynchronous = .full
        /// One transaction for everything queued (on), or one per operation (off: only to
        /// measure what group commit saves).
        public var groupCommit = true

        public init(directory: String) { self.directory = directory }
    }

    public static let databaseFileName = "tasks.db"

    public let databasePath: String
    private let rules: TaskRules
    private let clock: WallClock
    private let groupCommit: Bool
    private let feed = ChangeFeed()
    /// Released by `close` (after the database), or when the store goes away.
    private let directoryLock: Mutex<DataDirectoryLock?>
    /// `nil` once closed. Used on `writer` only.
    private let database: Mutex<SQLiteTaskDatabase?>
    /// `nil` once closed. Used on `reader` only.
    private let readConnection: Mutex<ReadConnection?>
    private let queue = Mutex(QueuedOperations())
    private let writer = DispatchQueue(label: "swapline.sqlite-writer")
    /// Answers committed operations, in commit order, while the writer commits the next batch.
    private let answerer = DispatchQueue(label: "swapline.sqlite-answers")
    private let reader = DispatchQueue(label: "swapline.sqlite-reader")
    private let transactions = Atomic<Int>(0)
    private let writeHealth = SQLiteWriteHealth()

    /// Locks the data directory, then opens (or creates) the database, checks that it is ours
    /// and brings its schema up to date. Reads nothing proportional to the stored tasks.
    public init(configuration: Configuration, rules: TaskRules, clock: WallClock = .system) throws(TaskStoreOpenError) {
        let lock = try DataDirectoryLock(directory: configuration.directory)
        let path = configuration.directory + "/" + Self.databaseFileName
        databasePath = path
        self.rules = rules
        self.clock = clock
        groupCommit = configuration.groupCommit
        directoryLock = Mutex(lock)
        let database = try SQLiteTaskDatabase(path: path, synchronous: configuration.synchronous)
        self.database = Mutex(database)
        do {
            readConnection = Mutex(try ReadConnection(path: path))
        } catch {
            throw TaskStoreOpenError(.inaccessible, path: path, reason: "cannot open a reading connection: \(error)")
        }
    }

    /// Every problem a full integrity check finds in the database of `directory` (empty when it
    /// is healthy). Reads the whole file; safe while a server uses it (`swapline check`).
    public static func integrityProblems(directory: String) throws(TaskStoreOpenError) -> [String] {
        let path = directory + "/" + databaseFileName
        do {
            return try SQLiteTaskDatabase.integrityProblems(path: path)
        } catch {
            throw TaskStoreOpenError(error.isCorruption ? .corrupt : .inaccessible, path: path, reason: "\(error)")
        }
    }

    /// False while every write fails (`SQLiteWriteHealth`): health then reports NOT_SERVING.
    public var isReachable: Bool { writeHealth.isWritable }

    /// Transactions committed or attempted so far; with group commit, fewer than operations.
    public var transactionCount: Int { transactions.load(ordering: .relaxed) }

    public func setChangeHandler(_ handler: @escaping @Sendable (TaskRecord) -> Void) {
        feed.setHandler(handler)
    }

    // MARK: - Operations

    public func create(_ task: TaskRecord, completion: @escaping Completion<CreateOutcome>) {
        enqueue(completion, inserts: true) { [rules] database throws(SQLiteError) in
            if let key = task.idempotencyKey, let existing = try database.reads.task(owner: task.owner, idempotencyKey: key) {
                return (.success(.existing(existing)), [])
            }
            // The one writer runs creates one after another, so the counts are exact.
            var openTasks = 0
            if let cap = rules.quotas.maxOpenTasksPerOwner, !task.owner.isEmpty {
                openTasks = try database.reads.openTaskCount(owner: task.owner, limit: cap)
            }
            let queued = rules.quotas.maxQueueLength == nil ? 0 : try database.reads.pendingTaskCount()
            if let refusal = rules.admit(task, openTasksOfOwner: openTasks, queuedTasks: queued) {
                return (.failure(refusal), [])
            }
            try database.save(task)
            return (.success(.created(task)), [task])
        }
    }

    public func claim(workflows: Set<String>, consumerID: String, completion: @escaping Completion<LeaseGrant?>) {
        enqueue(completion) { [rules, clock] database throws(SQLiteError) in
            var next: TaskRecord?
            for workflow in workflows {
                guard let first = try database.reads.firstPending(workflow: workflow) else { continue }
                if next == nil || TaskRules.precedes(first, next!) { next = first }
            }
            guard let next, let claimed = rules.claim(next, consumerID: consumerID, leaseID: LeaseID.random(), now: clock.nowMs())
            else { return (.success(nil), []) }
            try database.update(claimed)
            return (.success(LeaseGrant(task: claimed, lease: claimed.lease!)), [claimed])
        }
    }

    public func update(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>) {
        change(taskID: update.taskID, completion: completion) { [rules, clock] old in
            rules.apply(update, to: old, now: clock.nowMs())
        }
    }

    public func cancel(taskID: String, completion: @escaping Completion<TaskRecord>) {
        enqueue(completion) { [rules, clock] database throws(SQLiteError) in
            guard let old = try database.reads.task(id: taskID) else { return (.failure(.noSuchTask(taskID)), []) }
            guard let cancelled = rules.cancel(old, now: clock.nowMs()) else { return (.success(old), []) }
            try database.update(cancelled)
            return (.success(cancelled), [cancelled])
        }
    }

    public func handBack(taskID: String, leaseID: String, completion: @escaping Completion<TaskRecord?>) {
        enqueue(completion) { [rules, clock] database throws(SQLiteError) in
            guard let old = try database.reads.task(id: taskID), let returned = rules.handBack(old, leaseID: leaseID, now: clock.nowMs())
            else { return (.success(nil), []) }
            try database.update(returned)
            return (.success(returned), [returned])
        }
    }

    public func expireLeases(limit: Int, completion: @escaping Completion<Int>) {
        enqueue(completion) { [rules, clock] database throws(SQLiteError) in
            let now = clock.nowMs()
            var changed = try database.reads.expiredLeases(nowMs: now, limit: limit).compactMap { rules.expire($0, now: now) }
            if let maxAgeMs = rules.quotas.maxPendingAgeMs, changed.count < limit {
                changed += try database.reads.pending(changedBeforeMs: now - maxAgeMs + 1, limit: limit - changed.count)
                    .compactMap { rules.expirePending($0, now: now) }
            }
            for task in changed { try database.update(task) }
            return (.success(changed.count), changed)
        }
    }

    public func purgeFinished(changedBeforeMs cutoffMs: Int64, limit: Int, completion: @escaping Completion<[TaskRecord]>) {
        enqueue(completion, deletes: true) { database throws(SQLiteError) in
            let purgeable = try database.reads.finished(changedBeforeMs: cutoffMs, limit: limit)
                .filter { TaskRules.isPurgeable($0, changedBeforeMs: cutoffMs) }
            for task in purgeable { try database.delete(taskID: task.taskID) }
            return (.success(purgeable), [])
        }
    }

    public func task(id: String, completion: @escaping Completion<TaskRecord?>) {
        read(completion) { reads throws(SQLiteError) in try reads.task(id: id) }
    }

    public func list(_ query: TaskListQuery, completion: @escaping Completion<TaskPage>) {
        read(completion) { reads throws(SQLiteError) in try reads.page(query) }
    }

    public func stats(
        scope: TaskScope, workflow: String?, finishedSinceMs: Int64, completion: @escaping Completion<TaskStoreStats>
    ) {
        read(completion) { reads throws(SQLiteError) in
            try reads.stats(scope: scope, workflow: workflow, finishedSinceMs: finishedSinceMs)
        }
    }

    /// Answers `body`'s query on the reader connection: committed state, off the writer.
    private func read<T: Sendable>(
        _ completion: @escaping Completion<T>, _ body: @escaping @Sendable (SQLiteTaskReads) throws(SQLiteError) -> T
    ) {
        reader.async { [self] in
            let result: Result<T, TaskError> = readConnection.withLock { connection in
                guard let connection else { return .failure(Self.closedError) }
                do throws(SQLiteError) {
                    return .success(try body(connection.reads))
                } catch {
                    return .failure(error.taskError)
                }
            }
            completion(result)
        }
    }

    // MARK: - Copying a queue

    public func exportTasks(after afterTaskID: String, limit: Int) async throws -> [TaskRecord] {
        try await withCheckedThrowingContinuation { done in
            reader.async { [self] in
                done.resume(with: readConnection.withLock { connection in
                    Result { () throws(TaskError) -> [TaskRecord] in
                        guard let connection else { throw Self.closedError }
                        do throws(SQLiteError) {
                            return try connection.reads.tasks(after: afterTaskID, limit: limit)
                        } catch {
                            throw error.taskError
                        }
                    }
                })
            }
        }
    }

    public func importTasks(_ tasks: [TaskRecord]) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            enqueue({ done.resume(with: $0.mapError { $0 }) }, inserts: true) { database throws(SQLiteError) in
                for task in tasks { try database.save(task) }
                return (.success(()), [])
            }
        }
    }

    /// Commits what is queued, moves the write-ahead log into the database file and releases
    /// the data directory. Operations afterwards fail with UNAVAILABLE.
    public func close() async {
        queue.withLock { $0.isClosed = true }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            // The writer drains everything queued before `isClosed` was set, then runs this.
            writer.async { [self] in
                reader.sync { readConnection.withLock { $0 = nil } }
                database.withLock { database in
                    // A log left behind is replayed at the next open; nothing is lost without this.
                    try? database?.checkpoint()
                    database = nil
                }
                directoryLock.withLock { $0 = nil }
                done.resume()
            }
        }
    }

    /// Reads the task, applies `next` and saves the outcome, as one operation.
    private func change(
        taskID: String, completion: @escaping Completion<TaskRecord>,
        _ next: @escaping @Sendable (TaskRecord) -> Result<TaskRecord, TaskError>
    ) {
        enqueue(completion) { database throws(SQLiteError) in
            guard let old = try database.reads.task(id: taskID) else { return (.failure(.noSuchTask(taskID)), []) }
            let outcome = next(old)
            guard case .success(let new) = outcome else { return (outcome, []) }
            try database.update(new)
            return (outcome, [new])
        }
    }

    // MARK: - The writer

    /// Queues `body` for the writer. It runs inside a transaction and returns its answer and
    /// the tasks it changed; both are released only once the transaction committed.
    private func enqueue<T: Sendable>(
        _ completion: @escaping Completion<T>, inserts: Bool = false, deletes: Bool = false,
        _ body: @escaping @Sendable (SQLiteTaskDatabase) throws(SQLiteError) -> (Result<T, TaskError>, [TaskRecord])
    ) {
        let operation = QueuedOperation(
            inserts: inserts, deletes: deletes,
            apply: { database throws(SQLiteError) in
                let (answer, changed) = try body(database)
                return AppliedOperation(changed: changed) { completion(answer) }
            },
            fail: { completion(.failure($0)) })
        let next: WriterStep = queue.withLock { queued in
            if queued.isClosed { return .refuse }
            queued.operations.append(operation)
            if queued.isWriterRunning { return .wait }
            queued.isWriterRunning = true
            return .startWriter
        }
        switch next {
        case .refuse: completion(.failure(Self.closedError))
        case .wait: break
        case .startWriter: writer.async { self.commitQueuedOperations() }
        }
    }

    /// Runs on `writer` until nothing is queued.
    private func commitQueuedOperations() {
        while let batch = takeBatch() {
            let outcomes = database.withLock { database -> [Result<AppliedOperation, TaskError>] in
                guard let database else { return Array(repeating: .failure(Self.closedError), count: batch.count) }
                let outcomes = Self.commit(batch, in: database, health: writeHealth)
                if batch.contains(where: \.deletes) {
                    // Best effort: pages that stay free now are reclaimed after a later deletion.
                    try? database.reclaimFreePages()
                }
                return outcomes
            }
            transactions.add(1, ordering: .relaxed)
            for case .success(let applied) in outcomes { feed.enqueue(applied.changed) }
            // The writer goes straight on with the next batch; answering callers (encoding
            // responses) and feeding waiters and watchers run beside it.
            answerer.async { [feed] in
                for (operation, outcome) in zip(batch, outcomes) {
                    switch outcome {
                    case .success(let applied): applied.complete()
                    case .failure(let error): operation.fail(error)
                    }
                }
                feed.deliver()
            }
        }
    }

    /// Applies `batch` in one transaction. An insert the schema refuses fails alone (inserts
    /// run inside a savepoint of their own; updates of a stored row cannot break a constraint,
    /// so they skip the savepoint's two statements); any other error — out of space, I/O —
    /// fails them all, and nothing of the transaction is kept.
    private static func commit(
        _ batch: [QueuedOperation], in database: SQLiteTaskDatabase, health: SQLiteWriteHealth
    ) -> [Result<AppliedOperation, TaskError>] {
        var outcomes: [Result<AppliedOperation, TaskError>] = []
        let changesBefore = database.totalChanges
        do throws(SQLiteError) {
            try database.begin()
            for operation in batch {
                do throws(SQLiteError) {
                    let applied = operation.inserts
                        ? try database.withSavepoint { () throws(SQLiteError) in try operation.apply(database) }
                        : try operation.apply(database)
                    outcomes.append(.success(applied))
                } catch let error where error.isConstraintViolation {
                    outcomes.append(.failure(error.taskError))
                }
            }
            try database.commit()
            health.committed(wroteRows: database.totalChanges != changesBefore)
            return outcomes
        } catch {
            database.rollback()
            health.failed(error)
            return Array(repeating: .failure(error.taskError), count: batch.count)
        }
    }

    private func takeBatch() -> [QueuedOperation]? {
        queue.withLock { queued in
            guard !queued.operations.isEmpty else {
                queued.isWriterRunning = false
                return nil
            }
            guard groupCommit else { return [queued.operations.removeFirst()] }
            defer { queued.operations.removeAll(keepingCapacity: true) }
            return queued.operations
        }
    }

    private static let closedError = TaskError(.unavailable, "the task store is closed")

    // MARK: - Test hooks

    /// Caps the database at `pages` pages: writes beyond fail as if the disk were full.
    func limitSize(toPages pages: Int) async throws {
        try await onWriter { database throws(SQLiteError) in try database.limitSize(toPages: pages) }
    }

    /// The database's size in pages.
    func pageCount() async throws -> Int64 {
        try await onWriter { database throws(SQLiteError) in try database.pageCount() }
    }

    /// Runs `body` on the writer, between batches (tests hold the writer with it).
    func onWriter<T: Sendable>(_ body: @escaping @Sendable (SQLiteTaskDatabase) throws(SQLiteError) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { done in
            writer.async { [self] in
                done.resume(with: database.withLock { database in
                    Result { () throws(SQLiteError) -> T in
                        guard let database else { throw SQLiteError(code: 21, message: "closed") }
                        return try body(database)
                    }
                })
            }
        }
    }
}

/// The reader's connection and its prepared queries.
private final class ReadConnection {
    let connection: SQLiteConnection
    let reads: SQLiteTaskReads

    init(path: String) throws(SQLiteError) {
        connection = try SQLiteConnection(path: path, readOnly: true)
        reads = try SQLiteTaskReads(connection: connection)
    }
}

private enum WriterStep { case refuse, wait, startWriter }

/// What an operation did inside the transaction, held until it commits.
private struct AppliedOperation {
    var changed: [TaskRecord]
    var complete: @Sendable () -> Void
}

private struct QueuedOperation: Sendable {
    /// It may insert rows, which a unique index can refuse: it runs in a savepoint.
    var inserts: Bool
    /// It may delete rows: the writer then gives freed pages back afterwards.
    var deletes: Bool
    var apply: @Sendable (SQLiteTaskDatabase) throws(SQLiteError) -> AppliedOperation
    var fail: @Sendable (TaskError) -> Void
}

/// Operations waiting for the writer, guarded by the store's `queue` mutex.
private struct QueuedOperations {
    var operations: [QueuedOperation] = []
    /// A `commitQueuedOperations` run is scheduled or running; it takes every operation queued
    /// before it finds the queue empty and clears this.
    var isWriterRunning = false
    var isClosed = false
}
