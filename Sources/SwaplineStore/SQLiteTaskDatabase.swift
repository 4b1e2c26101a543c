#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwaplineCore

/// How hard each commit pushes the database to stable storage (`PRAGMA synchronous`).
public enum SQLiteSynchronous: String, Sendable, CaseIterable {
    /// Every commit fsyncs the write-ahead log: a committed task survives a power cut.
    case full
    /// The log is fsynced only at checkpoints: a committed task survives a crash of the
    /// process, but the last commits before a power cut or kernel panic may be lost.
    case normal
}

/// The task database file as the queue's writer uses it: identity checks, schema migrations,
/// transactions, and the statements that change tasks. Owned by one thread at a time (see
/// `SQLiteConnection`).
final class SQLiteTaskDatabase {
    /// Marks the file as ours in its header (`PRAGMA application_id`): "SWAP".
    static let applicationID: Int64 = 0x5357_4150

    /// Schema versions, in order; `PRAGMA user_version` counts how many have been applied.
    /// Append new versions, never edit a shipped one.
    static let migrations = [
        """
        CREATE TABLE tasks (
            task_id          TEXT PRIMARY KEY NOT NULL,
            workflow         TEXT NOT NULL,
            environment      TEXT NOT NULL,
            target_port      INTEGER NOT NULL,
            source_url       TEXT NOT NULL,
            target_url       TEXT NOT NULL,
            resolution       TEXT NOT NULL,
            model            TEXT NOT NULL,
            options          TEXT NOT NULL,  -- JSON object of further FaceFusion options
            state            TEXT NOT NULL
                CHECK (state IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')),
            source_channel   TEXT NOT NULL,
            created_at       INTEGER NOT NULL,  -- ms since the Unix epoch
            updated_at       INTEGER NOT NULL,
            progress         REAL NOT NULL,
            error            TEXT NOT NULL,
            output_url       TEXT,  -- NULL until the task has a result; then the output columns are set
            outputs          TEXT,  -- JSON object, format -> URL
            processing_time  REAL,
            job_id           TEXT,
            storage_provider TEXT,
            attempt          INTEGER NOT NULL,
            priority         INTEGER NOT NULL,
            idempotency_key  TEXT,
            lease_id         TEXT,  -- the lease columns are set exactly when state is PROCESSING
            lease_consumer   TEXT,
            lease_expires_at INTEGER,
            version          INTEGER NOT NULL
        ) STRICT;
        CREATE UNIQUE INDEX tasks_by_idempotency_key ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX tasks_in_fetch_order ON tasks (state, workflow, priority DESC, created_at);
        CREATE INDEX tasks_by_age ON tasks (state, updated_at);
        """,
        // The queue lives in the database: claims read the first PENDING task of a workflow
        // straight off an index in fetch order (task_id breaks ties, as in TaskRules.precedes),
        // and the lease sweep reads only PROCESSING tasks, by expiry.
        """
        DROP INDEX tasks_in_fetch_order;
        CREATE INDEX tasks_in_fetch_order ON tasks (workflow, state, priority DESC, created_at, task_id);
        CREATE INDEX tasks_by_lease_expiry ON tasks (lease_expires_at) WHERE state = 'PROCESSING';
        """,
        // Tenancy: a task belongs to the client token that created it ('' when the server
        // checked no token), and idempotency keys are unique per owner.
        """
        ALTER TABLE tasks ADD COLUMN owner TEXT NOT NULL DEFAULT '';
        DROP INDEX tasks_by_idempotency_key;
        CREATE UNIQUE INDEX tasks_by_owner_and_idempotency_key ON tasks (owner, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        """,
        // Quotas: a create counts its owner's open tasks off an index, stopping at the cap, and
        // reads the queue's length from one row that triggers keep exact in every transaction.
        """
        CREATE INDEX tasks_by_owner_and_state ON tasks (owner, state);
        CREATE TABLE queue_length (pending INTEGER NOT NULL) STRICT;
        INSERT INTO queue_length SELECT count(*) FROM tasks WHERE state = 'PENDING';
        CREATE TRIGGER queue_length_on_insert AFTER INSERT ON tasks WHEN NEW.state = 'PENDING'
        BEGIN UPDATE queue_length SET pending = pending + 1; END;
        CREATE TRIGGER queue_length_on_delete AFTER DELETE ON tasks WHEN OLD.state = 'PENDING'
        BEGIN UPDATE queue_length SET pending = pending - 1; END;
        CREATE TRIGGER queue_length_on_update AFTER UPDATE OF state ON tasks
            WHEN (OLD.state = 'PENDING') != (NEW.state = 'PENDING')
        BEGIN UPDATE queue_length SET pending = pending + (NEW.state = 'PENDING') - (OLD.state = 'PENDING'); END;
        """,
        // Listing and statistics (ListTasks, GetQueueStats, Task.history): pages walk an index in
        // creation order per state (and owner); counts per owner, workflow and state live in a
        // table that triggers keep exact in every transaction; the last minute's finishes are
        // read off tasks_by_age, or for one owner a partial index of finished tasks. The owner's
        // index gains the creation order and keeps serving the quota's count of open tasks.
        """
        ALTER TABLE tasks ADD COLUMN history TEXT NOT NULL DEFAULT '';  -- TaskHistory.text
        DROP INDEX tasks_by_owner_and_state;
        CREATE INDEX tasks_by_owner_state_and_creation ON tasks (owner, state, created_at, task_id);
        CREATE INDEX tasks_by_state_and_creation ON tasks (state, created_at, task_id);
        CREATE INDEX tasks_finished_by_owner ON tasks (owner, updated_at) WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED');
        CREATE TABLE task_counts (
            owner    TEXT NOT NULL,
            workflow TEXT NOT NULL,
            state    TEXT NOT NULL,
            count    INTEGER NOT NULL,
            PRIMARY KEY (owner, workflow, state)
        ) STRICT, WITHOUT ROWID;
        INSERT INTO task_counts SELECT owner, workflow, state, count(*) FROM tasks GROUP BY owner, workflow, state;
        CREATE TRIGGER task_counts_on_insert AFTER INSERT ON tasks
        BEGIN
            INSERT INTO task_counts VALUES (NEW.owner, NEW.workflow, NEW.state, 1) ON CONFLICT DO UPDATE SET count = count + 1;
        END;
        CREATE TRIGGER task_counts_on_delete AFTER DELETE ON tasks
        BEGIN
            UPDATE task_counts SET count = count - 1 WHERE owner = OLD.owner AND workflow = OLD.workflow AND state = OLD.state;
        END;
        CREATE TRIGGER task_counts_on_update AFTER UPDATE OF state, owner, workflow ON tasks
            WHEN OLD.state != NEW.state OR OLD.owner != NEW.owner OR OLD.workflow != NEW.workflow
        BEGIN
            UPDATE task_counts SET count = count - 1 WHERE owner = OLD.owner AND workflow = OLD.workflow AND state = OLD.state;
            INSERT INTO task_counts VALUES (NEW.owner, NEW.workflow, NEW.state, 1) ON CONFLICT DO UPDATE SET count = count + 1;
        END;
        """,
    ]

    static let columns = [
        "task_id", "workflow", "environment", "target_port", "source_url", "target_url", "resolution", "model",
        "options", "state", "source_channel", "created_at", "updated_at", "progress", "error", "output_url", "outputs",
        "processing_time", "job_id", "storage_provider", "attempt", "priority", "idempotency_key", "lease_id",
        "lease_consumer", "lease_expires_at", "version", "owner", "history",
    ]

    /// The writer connection's page cache, in KiB.
    static let pageCacheKiB = 32 * 1024

    /// Free pages tolerated before a vacuum step returns them to the file system.
    private static let freePagesBeforeVacuum: Int64 = 256
    /// Pages one vacuum step frees at most, so it never holds the writer for long.
    private static let pagesPerVacuumStep = 512

    let path: String
    /// The queries, on the writer's own connection: they see the open transaction's changes.
    let reads: SQLiteTaskReads
    private let connection: SQLiteConnection
    private let saveStatement: SQLiteStatement
    private let updateStatement: SQLiteStatement
    private let removeStatement: SQLiteStatement
    private let beginTransaction: SQLiteStatement
    private let commitTransaction: SQLiteStatement
    private let savepoint: SQLiteStatement
    private let releaseSavepoint: SQLiteStatement
    private let rollbackToSavepoint: SQLiteStatement

    /// Opens the file, creating it when missing, and refuses a file that is not a healthy
    /// Swapline task database; brings an older schema up to date.
    init(path: String, synchronous: SQLiteSynchronous) throws(TaskStoreOpenError) {
        self.path = path
        do {
            connection = try SQLiteConnection(path: path)
            try Self.checkIdentity(of: connection, path: path)
            // WAL: readers never block the writer, and a commit appends to one log file.
            guard try connection.textColumn("PRAGMA journal_mode = WAL") == ["wal"] else {
                throw TaskStoreOpenError(.inaccessible, path: path, reason: "SQLite could not switch the database to WAL mode")
            }
            try connection.execute("PRAGMA synchronous = \(synchronous.rawValue)")
            // Every operation walks the interior pages of the table and four indexes; with a
            // million tasks those alone outgrow SQLite's default 2 MiB cache, and each miss is
            // a read. 32 MiB holds them with room for the hot leaves, well inside the 64 MiB a
            // server may grow by with a million tasks stored (docs/benchmarks.md).
            try connection.execute("PRAGMA cache_size = -\(Self.pageCacheKiB)")
            try Self.migrate(connection, path: path)
            reads = try SQLiteTaskReads(connection: connection)
            let placeholders = (1...Self.columns.count).map { "?\($0)" }.joined(separator: ", ")
            let updates = Self.columns.dropFirst().map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
            saveStatement = try connection.prepare(
                """
                INSERT INTO tasks (\(Self.columns.joined(separator: ", "))) VALUES (\(placeholders))
                ON CONFLICT (task_id) DO UPDATE SET \(updates) WHERE excluded.version > tasks.version
                """)
            let changes = SQLiteTaskRows.changedColumns.enumerated().map { "\($1) = ?\($0 + 2)" }.joined(separator: ", ")
            updateStatement = try connection.prepare("UPDATE tasks SET \(changes) WHERE task_id = ?1")
            removeStatement = try connection.prepare("DELETE FROM tasks WHERE task_id = ?1")
            beginTransaction = try connection.prepare("BEGIN IMMEDIATE")
            commitTransaction = try connection.prepare("COMMIT")
            savepoint = try connection.prepare("SAVEPOINT operation")
            releaseSavepoint = try connection.prepare("RELEASE operation")
            rollbackToSavepoint = try connection.prepare("ROLLBACK TO operation")
        } catch let error as TaskStoreOpenError {
            throw error
        } catch let error as SQLiteError {
            throw Self.openError(error, path: path)
        } catch {
            throw TaskStoreOpenError(.inaccessible, path: path, reason: "\(error)")
        }
    }

    private static func openError(_ error: SQLiteError, path: String) -> TaskStoreOpenError {
        if error.isCorruption {
            return TaskStoreOpenError(.corrupt, path: path, reason: "the file is damaged or not a database (\(error))")
        }
        return TaskStoreOpenError(.inaccessible, path: path, reason: "\(error)")
    }

    /// A new (empty) file is claimed as ours; any other file must already carry our id.
    private static func checkIdentity(of connection: SQLiteConnection, path: String) throws {
        // The first read of the header: a file that is not SQLite fails here with NOTADB.
        let applicationID = try connection.integer("PRAGMA application_id")
        if applicationID == Self.applicationID { return }
        let objects = try connection.integer("SELECT count(*) FROM sqlite_schema")
        guard applicationID == 0, objects == 0 else {
            let found = String(applicationID, radix: 16)
            throw TaskStoreOpenError(
                .foreign, path: path,
                reason: "it is an SQLite database of another program (application_id 0x\(found), \(objects) schema objects), not a Swapline task database")
        }
        // Incremental auto-vacuum can only be chosen before the first table exists.
        try connection.execute("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA application_id = \(Self.applicationID)")
    }

    /// Every problem `PRAGMA integrity_check` finds in the file (empty when healthy). It reads
    /// the whole file, so it is the `swapline check` command's job, never part of a start.
    static func integrityProblems(path: String, limit: Int = 20) throws(SQLiteError) -> [String] {
        let connection = try SQLiteConnection(path: path, readOnly: true)
        return try connection.textColumn("PRAGMA integrity_check(\(limit))").filter { $0 != "ok" }
    }

    private static func migrate(_ connection: SQLiteConnection, path: String) throws {
        let applied = Int(try connection.integer("PRAGMA user_version"))
        guard applied <= migrations.count else {
            throw TaskStoreOpenError(
                .newerSchema, path: path,
                reason: "its schema version \(applied) is newer than this build knows (\(migrations.count)); run a newer swapline")
        }
        for (index, migration) in migrations.enumerated().dropFirst(applied) {
            try connection.execute("BEGIN IMMEDIATE; \(migration); PRAGMA user_version = \(index + 1); COMMIT")
        }
    }

    // MARK: - Writing

    func begin() throws(SQLiteError) { try beginTransaction.run([]) }

    func commit() throws(SQLiteError) { try commitTransaction.run([]) }

    /// Rows the writer connection has inserted, changed or deleted since it opened.
    var totalChanges: Int64 { connection.totalChanges }

    /// Undoes the open transaction, if SQLite has not already done so after an I/O error.
    func rollback() {
        if connection.isInTransaction { try? connection.execute("ROLLBACK") }
    }

    /// Runs `body` inside a savepoint: a constraint violation undoes only what `body` wrote
    /// and is rethrown; the transaction stays usable.
    func withSavepoint<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try savepoint.run([])
        do {
            let value = try body()
            try releaseSavepoint.run([])
            return value
        } catch let error where error.isConstraintViolation {
            try rollbackToSavepoint.run([])
            try releaseSavepoint.run([])
            throw error
        }
    }

    /// Inserts or replaces the task (by id), unless the stored row has a higher version.
    func save(_ record: TaskRecord) throws(SQLiteError) {
        try saveStatement.run(SQLiteTaskRows.values(of: record))
    }

    /// Writes what `TaskRules` may change over the stored task: cheaper than `save`, as SQLite
    /// then leaves the id, idempotency-key and creation columns and their indexes alone.
    func update(_ record: TaskRecord) throws(SQLiteError) {
        try updateStatement.run(SQLiteTaskRows.changedValues(of: record))
    }

    func delete(taskID: String) throws(SQLiteError) {
        try removeStatement.run([.text(taskID)])
    }

    /// Gives pages freed by deletions back to the file system, a bounded step at a time.
    func reclaimFreePages() throws(SQLiteError) {
        guard try connection.integer("PRAGMA freelist_count") > Self.freePagesBeforeVacuum else { return }
        try connection.execute("PRAGMA incremental_vacuum(\(Self.pagesPerVacuumStep))")
    }

    /// Moves the write-ahead log into the database file and empties it, for a tidy close.
    func checkpoint() throws(SQLiteError) {
        try connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Caps the file at `pages` pages, so tests can make the disk "full".
    func limitSize(toPages pages: Int) throws(SQLiteError) {
        _ = try connection.integer("PRAGMA max_page_count = \(pages)")
    }

    func pageCount() throws(SQLiteError) -> Int64 { try connection.integer("PRAGMA page_count") }
}

/// How a task is laid out in a row of `tasks` (the columns of `SQLiteTaskDatabase.columns`).
enum SQLiteTaskRows {
    static func values(of record: TaskRecord) -> [SQLiteValue] {
        let output = record.output
        let lease = record.lease
        return [
            .text(record.taskID), .text(record.workflow), .text(record.environment), .integer(Int64(record.targetPort)),
            .text(record.params.sourceURL), .text(record.params.targetURL), .text(record.params.resolution),
            .text(record.params.model), .text(encode(record.params.options)), .text(record.state.rawValue),
            .text(record.sourceChannel), .integer(record.createdAtMs), .integer(record.updatedAtMs),
            .real(Double(record.progress)), .text(record.error),
            output.map { .text($0.outputURL) } ?? .null,
            output.map { .text(encode($0.outputs)) } ?? .null,
            output.map { .real($0.processingTime) } ?? .null,
            output.map { .text($0.jobID) } ?? .null,
            output.map { .text($0.storageProvider) } ?? .null,
            .integer(Int64(record.attempt)), .integer(Int64(record.priority)),
            record.idempotencyKey.map { .text($0) } ?? .null,
            lease.map { .text($0.id) } ?? .null,
            lease.map { .text($0.consumerID) } ?? .null,
            lease.map { .integer($0.expiresAtMs) } ?? .null,
            .integer(record.version), .text(record.owner), .text(TaskHistory.text(record.history)),
        ]
    }

    /// The columns `TaskRules` changes (`SQLiteTaskDatabase.update`).
    static let changedColumns = [
        "state", "updated_at", "progress", "error", "output_url", "outputs", "processing_time", "job_id",
        "storage_provider", "attempt", "lease_id", "lease_consumer", "lease_expires_at", "version", "history",
    ]

    /// Where each of `changedColumns` is in `SQLiteTaskDatabase.columns`.
    private static let changedColumnPositions = changedColumns.map { SQLiteTaskDatabase.columns.firstIndex(of: $0)! }

    /// The task id, then the values of `changedColumns`.
    static func changedValues(of record: TaskRecord) -> [SQLiteValue] {
        let all = values(of: record)
        return [all[0]] + changedColumnPositions.map { all[$0] }
    }

    /// The record in the current row of a statement selecting `columns` in order.
    static func record(from row: SQLiteStatement) -> TaskRecord {
        let params = FaceSwapParameters(
            sourceURL: row.text(at: 4), targetURL: row.text(at: 5), resolution: row.text(at: 6), model: row.text(at: 7),
            options: decode(row.text(at: 8)))
        let output = row.optionalText(at: 15).map { url in
            TaskOutput(
                outputURL: url, outputs: decode(row.text(at: 16)), processingTime: row.real(at: 17), jobID: row.text(at: 18),
                storageProvider: row.text(at: 19))
        }
        let lease = row.optionalText(at: 23).map { id in
            Lease(id: id, consumerID: row.text(at: 24), expiresAtMs: row.integer(at: 25))
        }
        return TaskRecord(
            taskID: row.text(at: 0), workflow: row.text(at: 1), environment: row.text(at: 2),
            targetPort: Int32(truncatingIfNeeded: row.integer(at: 3)), params: params,
            state: TaskState(rawValue: row.text(at: 9)) ?? .failed, sourceChannel: row.text(at: 10),
            createdAtMs: row.integer(at: 11), updatedAtMs: row.integer(at: 12), progress: Float(row.real(at: 13)),
            error: row.text(at: 14), output: output, attempt: Int32(truncatingIfNeeded: row.integer(at: 20)),
            priority: Int32(truncatingIfNeeded: row.integer(at: 21)), idempotencyKey: row.optionalText(at: 22),
            owner: row.text(at: 27), lease: lease, version: row.integer(at: 26), history: TaskHistory.parse(row.text(at: 28)))
    }

    private static func encode(_ map: [String: String]) -> String {
        guard !map.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // A [String: String] always encodes.
        return String(decoding: (try? encoder.encode(map)) ?? Data("{}".utf8), as: UTF8.self)
    }

    private static func decode(_ json: String) -> [String: String] {
        guard json != "{}" else { return [:] }
        return (try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))) ?? [:]
    }
}
