import Logging
import NIOSSL
import PostgresNIO
import SwaplineCore
import Synchronization

/// The shared queue backend: every task in one PostgreSQL table, used by any number of servers
/// at once.
///
/// Each operation runs in a transaction that locks the rows it reads (`FOR UPDATE`; claims and
/// sweeps `FOR UPDATE SKIP LOCKED`, so concurrent servers pass over each other's rows instead
/// of waiting or handing one task out twice), asks `TaskRules`, and writes. Concurrent
/// operations share transactions (`PostgresCommitBatcher`). A trigger NOTIFYs every committed
/// change; each server's `PostgresChangeListener` feeds them, in commit order, to the change
/// handler, so a task created through one server wakes a consumer waiting on another, and
/// watchers everywhere see every change. A notification missed while a connection was down is
/// caught by the scheduler's re-check every `recheckIntervalMs`.
///
/// While the listener cannot reach the database, operations fail at once with UNAVAILABLE and
/// `isReachable` is false; both recover by themselves when it is back.
public final class PostgresTaskQueue: TaskTransfer {
    public struct Configuration: Sendable {
        public var location: PostgresStoreLocation
        /// Pooled connections for operations (the listener holds one more of its own).
        public var poolSize = 8
        /// Transactions run at once; each commits a batch of queued operations.
        public var concurrentBatches = 4
        /// Most operations one transaction commits.
        public var maxBatchSize = 64
        /// Longest an operation waits for the database before it is answered UNAVAILABLE.
        public var operationTimeout: Duration = .seconds(10)
        /// How often the listener checks that the database still answers.
        public var probeInterval: Duration = .seconds(2)
        /// How often the scheduler re-reads watched tasks and retries waiting consumers.
        public var recheckIntervalMs: Int64 = 2_000

        public init(location: PostgresStoreLocation) { self.location = location }
    }

    public let location: PostgresStoreLocation
    private let configuration: Configuration
    private let rules: TaskRules
    private let clock: WallClock
    private let logger: Logger
    private let client: PostgresClient
    private let clientRun: Task<Void, Never>
    private let batcher: PostgresCommitBatcher
    private let feed = ChangeFeed()
    private let queueLength = QueueLengthEstimate()
    /// Set once `open` made it; `nil` only while opening.
    private let listener = Mutex<PostgresChangeListener?>(nil)

    /// Connects, brings the schema up to date (once, even when several servers start
    /// together) and starts listening for changes. Fails when the database cannot be reached
    /// or its schema is newer than this build.
    public static func open(
        configuration: Configuration, rules: TaskRules, clock: WallClock = .system, logger: Logger
    ) async throws(TaskStoreOpenError) -> PostgresTaskQueue {
        let location = configuration.location
        let connectionConfiguration: PostgresConnection.Configuration
        let clientConfiguration: PostgresClient.Configuration
        do {
            (connectionConfiguration, clientConfiguration) = try connectionSettings(configuration)
        } catch {
            throw TaskStoreOpenError(.inaccessible, path: location.description, reason: "cannot set up TLS: \(error)")
        }
        do {
            let connection = try await PostgresConnection.connect(configuration: connectionConfiguration, id: 0, logger: logger)
            defer { Task { try? await connection.close() } }
            try await PostgresTaskSchema.migrate(connection, location: location, logger: logger)
        } catch let error as TaskStoreOpenError {
            throw error
        } catch {
            throw TaskStoreOpenError(.inaccessible, path: location.description, reason: PostgresFailure.explain(error))
        }
        let queue = PostgresTaskQueue(
            configuration: configuration, client: PostgresClient(configuration: clientConfiguration, backgroundLogger: logger),
            rules: rules, clock: clock, logger: logger)
        let listener = PostgresChangeListener(
            configuration: connectionConfiguration, channel: PostgresTaskSchema.changeChannel,
            probeInterval: configuration.probeInterval, logger: logger
        ) { [weak queue] payload in
            await queue?.received(payload)
        }
        queue.listener.withLock { $0 = listener }
        await listener.start()
        return queue
    }

    private init(configuration: Configuration, client: PostgresClient, rules: TaskRules, clock: WallClock, logger: Logger) {
        location = configuration.location
        self.configuration = configuration
        self.client = client
        self.rules = rules
        self.clock = clock
        self.logger = logger
        clientRun = Task { await client.run() }
        batcher = PostgresCommitBatcher(
            client: client, maxConcurrentBatches: configuration.concurrentBatches, maxBatchSize: configuration.maxBatchSize,
            timeout: configuration.operationTimeout, location: configuration.location, logger: logger)
    }

    private static func connectionSettings(
        _ configuration: Configuration
    ) throws -> (PostgresConnection.Configuration, PostgresClient.Configuration) {
        let location = configuration.location
        var tls = TLSConfiguration.makeClientConfiguration()
        if location.tlsMode != .verifyFull { tls.certificateVerification = .none }
        let connectionTLS: PostgresConnection.Configuration.TLS
        let clientTLS: PostgresClient.Configuration.TLS
        switch location.tlsMode {
        case .disable:
            (connectionTLS, clientTLS) = (.disable, .disable)
        case .prefer:
            (connectionTLS, clientTLS) = (.prefer(try NIOSSLContext(configuration: tls)), .prefer(tls))
        case .require, .verifyFull:
            (connectionTLS, clientTLS) = (.require(try NIOSSLContext(configuration: tls)), .require(tls))
        }
        var connection = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: connectionTLS)
        connection.options.connectTimeout = .seconds(5)
        var client = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: clientTLS)
        client.options.maximumConnections = configuration.poolSize
        client.options.connectTimeout = .seconds(5)
        return (connection, client)
    }

    public func setChangeHandler(_ handler: @escaping @Sendable (TaskRecord) -> Void) {
        feed.setHandler(handler)
    }

    public var changeFeedRecheckIntervalMs: Int64? { configuration.recheckIntervalMs }

    public var isReachable: Bool { listener.withLock { $0?.current.isConnected ?? false } }

    // MARK: - Operations

    public func create(_ task: TaskRecord, completion: @escaping Completion<CreateOutcome>) {
        submit(completion) { [rules, queueLength, clock, logger] connection in
            if let key = task.idempotencyKey, let existing = try await Self.first(Self.task(owner: task.owner, key: key, on: connection, logger: logger)) {
                return .success(.existing(existing))
            }
            if let refusal = try await Self.quotaRefusal(
                for: task, rules: rules, queueLength: queueLength, nowMs: clock.nowMs(), on: connection, logger: logger)
            {
                return .failure(refusal)
            }
            if try await connection.query(PostgresTaskRows.insertNew(task), logger: logger).collect().count == 1 {
                queueLength.admittedOne()
                return .success(.created(task))
            }
            // Another transaction stored the same key meanwhile.
            if let key = task.idempotencyKey, let existing = try await Self.first(Self.task(owner: task.owner, key: key, on: connection, logger: logger)) {
                return .success(.existing(existing))
            }
            // Task ids are unique by construction; reaching this means a copy was imported under it.
            return .failure(TaskError(.unavailable, "task id '\(task.taskID)' is already taken in the store; retry"))
        }
    }

    private static func task(owner: String, key: String, on connection: PostgresConnection, logger: Logger) async throws -> PostgresRowSequence {
        try await connection.query(
            "SELECT row_to_json(t)::text FROM swapline_tasks t WHERE owner = \(owner) AND idempotency_key = \(key)", logger: logger)
    }

    /// Counts what the quotas need, each only up to its cap, and asks the rules. The counts see
    /// committed tasks and this transaction's own: creates in transactions committing at the
    /// same moment (at most `concurrentBatches` per server, each up to `maxBatchSize` creates)
    /// do not see each other, which is how far a cap can be overshot. The queue's length is
    /// counted only near its cap (`QueueLengthEstimate`).
    private static func quotaRefusal(
        for task: TaskRecord, rules: TaskRules, queueLength: QueueLengthEstimate, nowMs: Int64,
        on connection: PostgresConnection, logger: Logger
    ) async throws -> TaskError? {
        var openTasks = 0
        if let cap = rules.quotas.maxOpenTasksPerOwner, !task.owner.isEmpty {
            openTasks = try await count(
                connection.query(
                    """
                    SELECT count(*) FROM (SELECT 1 FROM swapline_tasks WHERE owner = \(task.owner)
                        AND state IN ('PENDING', 'PROCESSING') LIMIT \(cap)) AS open
                    """, logger: logger))
        }
        var queued = 0
        if let cap = rules.quotas.maxQueueLength {
            if let estimate = queueLength.clearlyBelow(cap: cap, nowMs: nowMs) {
                queued = estimate
            } else {
                queued = try await count(
                    connection.query(
                        "SELECT count(*) FROM (SELECT 1 FROM swapline_tasks WHERE state = 'PENDING' LIMIT \(cap)) AS queued",
                        logger: logger))
                queueLength.counted(queued, atMs: nowMs)
            }
        }
        return rules.admit(task, openTasksOfOwner: openTasks, queuedTasks: queued)
    }

    private static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var counted = 0
        for try await value in rows.decode(Int64.self) { counted = Int(value) }
        return counted
    }

    public func claim(workflows: Set<String>, consumerID: String, completion: @escaping Completion<LeaseGrant?>) {
        let names = workflows.sorted()
        submit(completion) { [rules, clock, logger] connection in
            // The first PENDING task of each workflow straight off the fetch-order index, rows
            // that other transactions hold skipped, then the first of those.
            let rows = try await connection.query(
                """
                SELECT row_to_json(t)::text FROM unnest(\(names)::text[]) AS w(name)
                CROSS JOIN LATERAL (
                    SELECT * FROM swapline_tasks WHERE workflow = w.name AND state = 'PENDING'
                    ORDER BY priority DESC, created_at, task_id LIMIT 1 FOR UPDATE SKIP LOCKED
                ) t
                ORDER BY t.priority DESC, t.created_at, t.task_id LIMIT 1
                """, logger: logger)
            guard let next = try await Self.first(rows),
                let claimed = rules.claim(next, consumerID: consumerID, leaseID: LeaseID.random(), now: clock.nowMs())
            else { return .success(nil) }
            try await connection.query(PostgresTaskRows.update(claimed), logger: logger)
            return .success(LeaseGrant(task: claimed, lease: claimed.lease!))
        }
    }

    public func update(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>) {
        change(taskID: update.taskID, completion: completion) { [rules, clock] old in
            rules.apply(update, to: old, now: clock.nowMs())
        }
    }

    public func cancel(taskID: String, completion: @escaping Completion<TaskRecord>) {
        change(taskID: taskID, completion: completion) { [rules, clock] old in
            .success(rules.cancel(old, now: clock.nowMs()) ?? old)
        }
    }

    public func handBack(taskID: String, leaseID: String, completion: @escaping Completion<TaskRecord?>) {
        submit(completion) { [rules, clock, logger] connection in
            guard let old = try await Self.locked(taskID, on: connection, logger: logger),
                let returned = rules.handBack(old, leaseID: leaseID, now: clock.nowMs())
            else { return .success(nil) }
            try await connection.query(PostgresTaskRows.update(returned), logger: logger)
            return .success(returned)
        }
    }

    public func expireLeases(limit: Int, completion: @escaping Completion<Int>) {
        submit(completion) { [rules, clock, logger] connection in
            let now = clock.nowMs()
            let expired = try await PostgresTaskRows.records(
                connection.query(
                    """
                    SELECT row_to_json(t)::text FROM swapline_tasks t
                    WHERE state = 'PROCESSING' AND lease_expires_at <= \(now)
                    ORDER BY lease_expires_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                    """, logger: logger))
            var changed = expired.compactMap { rules.expire($0, now: now) }
            if let maxAgeMs = rules.quotas.maxPendingAgeMs, changed.count < limit {
                let waiting = try await PostgresTaskRows.records(
                    connection.query(
                        """
                        SELECT row_to_json(t)::text FROM swapline_tasks t
                        WHERE state = 'PENDING' AND updated_at <= \(now - maxAgeMs)
                        ORDER BY updated_at LIMIT \(limit - changed.count) FOR UPDATE SKIP LOCKED
                        """, logger: logger))
                changed += waiting.compactMap { rules.expirePending($0, now: now) }
            }
            for task in changed { try await connection.query(PostgresTaskRows.update(task), logger: logger) }
            // The sweep also folds the count changes, so they stay few between GetQueueStats
            // calls; a server whose sweep finds another folding skips it this time.
            var locked = false
            for try await got in try await connection.query(
                "SELECT pg_try_advisory_xact_lock(\(PostgresTaskSchema.countCompactionLockKey))", logger: logger
            ).decode(Bool.self) {
                locked = got
            }
            if locked {
                try await connection.query(PostgresQuery(unsafeSQL: PostgresTaskSchema.compactCountChanges), logger: logger)
            }
            return .success(changed.count)
        }
    }

    public func purgeFinished(changedBeforeMs cutoffMs: Int64, limit: Int, completion: @escaping Completion<[TaskRecord]>) {
        submit(completion) { [logger] connection in
            let finished = try await PostgresTaskRows.records(
                connection.query(
                    """
                    SELECT row_to_json(t)::text FROM swapline_tasks t
                    WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED') AND updated_at < \(cutoffMs)
                    ORDER BY updated_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                    """, logger: logger))
            let purgeable = finished.filter { TaskRules.isPurgeable($0, changedBeforeMs: cutoffMs) }
            let ids = purgeable.map(\.taskID)
            if !ids.isEmpty {
                try await connection.query("DELETE FROM swapline_tasks WHERE task_id = ANY(\(ids)::text[])", logger: logger)
            }
            return .success(purgeable)
        }
    }

    public func task(id: String, completion: @escaping Completion<TaskRecord?>) {
        submit(completion, batched: false) { [logger] connection in
            .success(try await Self.first(
                connection.query("SELECT row_to_json(t)::text FROM swapline_tasks t WHERE task_id = \(id)", logger: logger)))
        }
    }

    public func list(_ query: TaskListQuery, completion: @escaping Completion<TaskPage>) {
        submit(completion, batched: false) { [logger] connection in
            if let keyed = query.ownedKey {
                let task = try await Self.first(Self.task(owner: keyed.owner, key: keyed.key, on: connection, logger: logger))
                return .success(query.page(ofKeyed: task))
            }
            let filter = query.filter
            let start = query.start
            let earliest = filter.createdAfterMs ?? Int64.min
            var candidates: [TaskRecord] = []
            for state in filter.statesToList {
                let rows: PostgresRowSequence
                switch query.scope {
                case .everyone:
                    rows = try await connection.query(
                        """
                        SELECT row_to_json(t)::text FROM swapline_tasks t
                        WHERE state = \(state.rawValue) AND (created_at, task_id) < (\(start.createdAtMs), \(start.taskID))
                            AND created_at >= \(earliest) AND (\(filter.workflow)::text IS NULL OR workflow = \(filter.workflow))
                            AND (\(filter.idempotencyKey)::text IS NULL OR idempotency_key = \(filter.idempotencyKey))
                        ORDER BY created_at DESC, task_id DESC LIMIT \(query.limit + 1)
                        """, logger: logger)
                case .owner(let owner):
                    rows = try await connection.query(
                        """
                        SELECT row_to_json(t)::text FROM swapline_tasks t
                        WHERE owner = \(owner) AND state = \(state.rawValue)
                            AND (created_at, task_id) < (\(start.createdAtMs), \(start.taskID))
                            AND created_at >= \(earliest) AND (\(filter.workflow)::text IS NULL OR workflow = \(filter.workflow))
                            AND (\(filter.idempotencyKey)::text IS NULL OR idempotency_key = \(filter.idempotencyKey))
                        ORDER BY created_at DESC, task_id DESC LIMIT \(query.limit + 1)
                        """, logger: logger)
                }
                candidates += try await PostgresTaskRows.records(rows)
            }
            return .success(TaskPage(candidates: candidates, limit: query.limit))
        }
    }

    public func stats(
        scope: TaskScope, workflow: String?, finishedSinceMs: Int64, completion: @escaping Completion<TaskStoreStats>
    ) {
        var owner: String?
        if case .owner(let name) = scope { owner = name }
        submit(completion, batched: false) { [logger, owner] connection in
            try await connection.inTransaction(logger: logger) { connection in
                var stats = TaskStoreStats()
                try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresTaskSchema.countCompactionLockKey))", logger: logger)
                try await connection.query(PostgresQuery(unsafeSQL: PostgresTaskSchema.compactCountChanges), logger: logger)
                for try await (workflowName, stateName, count) in try await connection.query(
                    """
                    SELECT workflow, state, sum(delta)::bigint FROM swapline_task_count_changes
                    WHERE (\(owner)::text IS NULL OR owner = \(owner)) AND (\(workflow)::text IS NULL OR workflow = \(workflow))
                    GROUP BY workflow, state HAVING sum(delta) > 0
                    """, logger: logger
                ).decode((String, String, Int64).self) {
                    guard let state = TaskState(rawValue: stateName) else { continue }
                    stats.counts[TaskStoreStats.Key(workflow: workflowName, state: state)] = count
                }
                // $2 is referenced either way, so that PostgreSQL knows its type.
                let ownerClause = owner == nil ? "$2::text IS NULL AND " : "owner = $2 AND "
                for try await createdAt in try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT created_at FROM swapline_tasks
                            WHERE \(ownerClause)state = 'PENDING' AND ($1::text IS NULL OR workflow = $1)
                            ORDER BY created_at, task_id LIMIT 1
                            """, binds: Self.binds(workflow, owner)), logger: logger
                ).decode(Int64.self) {
                    stats.oldestPendingCreatedAtMs = createdAt
                }
                for try await (finished, failed) in try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT count(*), count(*) FILTER (WHERE state = 'FAILED') FROM swapline_tasks
                            WHERE \(ownerClause)state IN ('COMPLETED', 'FAILED', 'CANCELLED') AND updated_at >= $3
                                AND ($1::text IS NULL OR workflow = $1)
                            """, binds: Self.binds(workflow, owner, finishedSinceMs)), logger: logger
                ).decode((Int64, Int64).self) {
                    stats.finishedSince = finished
                    stats.failedSince = failed
                }
                return .success(stats)
            }
        }
    }

    /// $1 the workflow, $2 the owner (both NULL for any), then `since` as $3 when given.
    private static func binds(_ workflow: String?, _ owner: String?, _ since: Int64? = nil) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(workflow)
        binds.append(owner)
        if let since { binds.append(since) }
        return binds
    }

    // MARK: - Copying a queue

    public func exportTasks(after afterTaskID: String, limit: Int) async throws -> [TaskRecord] {
        try await client.withConnection { [logger] connection in
            try await PostgresTaskRows.records(
                connection.query(
                    "SELECT row_to_json(t)::text FROM swapline_tasks t WHERE task_id > \(afterTaskID) ORDER BY task_id LIMIT \(limit)",
                    logger: logger))
        }
    }

    public func importTasks(_ tasks: [TaskRecord]) async throws {
        try await client.withConnection { [logger] connection in
            try await connection.inTransaction(logger: logger) { connection in
                for task in tasks { try await connection.query(PostgresTaskRows.save(task), logger: logger) }
            }
        }
    }

    /// Answers what is in flight (or fails it once `operationTimeout` passed), then stops
    /// listening and closes every connection. Operations afterwards fail with UNAVAILABLE.
    public func close() async {
        await withTaskGroup(of: Void.self) { [batcher, clientRun, configuration] group in
            group.addTask { await batcher.close() }
            group.addTask { try? await Task.sleep(for: configuration.operationTimeout) }
            await group.next()
            // Shutting the pool down also ends a transaction still waiting for a connection.
            clientRun.cancel()
            group.cancelAll()
        }
        await clientRun.value
        let listener = listener.withLock { $0 }
        await listener?.stop()
    }

    // MARK: - Running operations

    /// Reads the task locked, asks `next` for its new state and saves it, as one operation.
    private func change(
        taskID: String, completion: @escaping Completion<TaskRecord>,
        _ next: @escaping @Sendable (TaskRecord) -> Result<TaskRecord, TaskError>
    ) {
        submit(completion) { [logger] connection in
            guard let old = try await Self.locked(taskID, on: connection, logger: logger) else {
                return .failure(.noSuchTask(taskID))
            }
            let outcome = next(old)
            if case .success(let new) = outcome, new != old {
                try await connection.query(PostgresTaskRows.update(new), logger: logger)
            }
            return outcome
        }
    }

    /// Runs `body` in a shared transaction (`batched`) or on a pooled connection of its own,
    /// and answers `completion` exactly once: with its result after the commit, or with
    /// UNAVAILABLE at once while the database is unreachable.
    private func submit<T: Sendable>(
        _ completion: @escaping Completion<T>, batched: Bool = true,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result<T, TaskError>
    ) {
        let answer = AnswerOnce(completion)
        if let problem = unreachableProblem() {
            answer(.failure(TaskError(
                .unavailable, "the PostgreSQL store \(location) is unreachable (\(problem)); the server keeps reconnecting, retry later")))
            return
        }
        let operation = BatchedOperation(
            run: { connection in
                let result = try await body(connection)
                return { answer(result) }
            },
            fail: { answer(.failure($0)) })
        if batched {
            batcher.submit(operation)
            return
        }
        Task { [client, location, configuration] in
            let deadline = Task {
                try await Task.sleep(for: configuration.operationTimeout)
                operation.fail(TaskError(.unavailable, "the PostgreSQL store \(location) did not answer within \(configuration.operationTimeout)"))
            }
            defer { deadline.cancel() }
            do {
                let answerNow = try await client.withConnection { connection in try await operation.run(connection) }
                answerNow()
            } catch {
                operation.fail(PostgresFailure.taskError(error, location: location))
            }
        }
    }

    private func unreachableProblem() -> String? {
        let status = listener.withLock { $0?.current }
        guard let status, !status.isConnected else { return nil }
        return status.lastProblem
    }

    /// A change notification from the trigger: the task as JSON, or only its id and version
    /// when it was too large for a notification (then it is read).
    private func received(_ payload: String) async {
        let task: TaskRecord?
        do {
            task = try PostgresTaskRows.record(fromJSON: payload)
        } catch {
            task = await readAnnounced(payload)
        }
        guard let task else { return }
        feed.enqueue([task])
        feed.deliver()
    }

    private func readAnnounced(_ payload: String) async -> TaskRecord? {
        guard let taskID = PostgresTaskRows.announcedTaskID(payload) else {
            logger.error("PostgreSQL store: ignoring a change notification that is not a task: \(payload.prefix(200))")
            return nil
        }
        return await withCheckedContinuation { done in
            task(id: taskID) { result in done.resume(returning: try? result.get()) }
        }
    }

    private static func locked(_ taskID: String, on connection: PostgresConnection, logger: Logger) async throws -> TaskRecord? {
        try await first(
            connection.query("SELECT row_to_json(t)::text FROM swapline_tasks t WHERE task_id = \(taskID) FOR UPDATE", logger: logger))
    }

    private static func first(_ rows: PostgresRowSequence) async throws -> TaskRecord? {
        try await PostgresTaskRows.records(rows).first
    }
}

/// A completion that runs once: the first answer wins (a result, or a timeout's failure).
private final class AnswerOnce<T: Sendable>: Sendable {
    private let completion: Mutex<(@Sendable (Result<T, TaskError>) -> Void)?>

    init(_ completion: @escaping @Sendable (Result<T, TaskError>) -> Void) { self.completion = Mutex(completion) }

    func callAsFunction(_ result: Result<T, TaskError>) {
        let completion = self.completion.withLock { completion in defer { completion = nil }; return completion }
        completion?(result)
    }
}
