import Logging
import PostgresNIO
import SwaplineCore

/// The queue's tables in a PostgreSQL database and the migrations that make them.
///
/// `swapline_schema_migrations` records each applied version. Every server runs `migrate` at
/// start inside one transaction that first takes an advisory lock, so when several servers
/// start together one applies the migrations and the others wait, then find nothing to do.
enum PostgresTaskSchema {
    static let table = "swapline_tasks"
    /// The NOTIFY channel the trigger sends every committed insert and update of a task to.
    static let changeChannel = "swapline_task_changes"
    /// Taken with `pg_advisory_xact_lock` while migrating ("SWAPLINE" in ASCII).
    static let migrationLockKey: Int64 = 0x5357_4150_4C49_4E45
    /// NOTIFY payloads must stay under 8000 bytes; a row whose JSON is longer is announced by
    /// id and version, and listeners read it.
    static let largestInlinePayload = 7_900

    /// Schema versions in order, each a list of statements (one statement per query in the
    /// extended protocol). Append new versions; never edit a shipped one.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE swapline_tasks (
                task_id          text PRIMARY KEY,
                workflow         text NOT NULL,
                environment      text NOT NULL,
                target_port      integer NOT NULL,
                source_url       text NOT NULL,
                target_url       text NOT NULL,
                resolution       text NOT NULL,
                model            text NOT NULL,
                options          jsonb NOT NULL,
                state            text NOT NULL
                    CHECK (state IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')),
                source_channel   text NOT NULL,
                created_at       bigint NOT NULL,
                updated_at       bigint NOT NULL,
                progress         double precision NOT NULL,
                error            text NOT NULL,
                output_url       text,
                outputs          jsonb,
                processing_time  double precision,
                job_id           text,
                storage_provider text,
                attempt          integer NOT NULL,
                priority         integer NOT NULL,
                idempotency_key  text,
                lease_id         text,
                lease_consumer   text,
                lease_expires_at bigint,
                version          bigint NOT NULL,
                CHECK ((state = 'PROCESSING') = (lease_id IS NOT NULL))
            )
            """,
            "COMMENT ON TABLE swapline_tasks IS 'Swapline task queue: one row per task; times are ms since the Unix epoch'",
            """
            CREATE UNIQUE INDEX swapline_tasks_by_idempotency_key ON swapline_tasks (idempotency_key)
                WHERE idempotency_key IS NOT NULL
            """,
            // Claims read the first PENDING task of a workflow straight off this index, in
            // TaskRules.precedes order; only PENDING rows are in it.
            """
            CREATE INDEX swapline_tasks_pending_in_fetch_order ON swapline_tasks (workflow, priority DESC, created_at, task_id)
                WHERE state = 'PENDING'
            """,
            "CREATE INDEX swapline_tasks_by_lease_expiry ON swapline_tasks (lease_expires_at) WHERE state = 'PROCESSING'",
            """
            CREATE INDEX swapline_tasks_finished_by_age ON swapline_tasks (updated_at)
                WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED')
            """,
            // Every committed insert and update reaches every listening server, in commit order.
            """
            CREATE FUNCTION swapline_notify_task_change() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                payload text := row_to_json(NEW)::text;
            BEGIN
                IF octet_length(payload) > \(largestInlinePayload) THEN
                    payload := json_build_object('task_id', NEW.task_id, 'version', NEW.version)::text;
                END IF;
                PERFORM pg_notify('\(changeChannel)', payload);
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER swapline_tasks_changed AFTER INSERT OR UPDATE ON swapline_tasks
                FOR EACH ROW EXECUTE FUNCTION swapline_notify_task_change()
            """,
        ],
        // Tenancy: a task belongs to the client token that created it ('' when the server
        // checked no token), and idempotency keys are unique per owner.
        [
            "ALTER TABLE swapline_tasks ADD COLUMN owner text NOT NULL DEFAULT ''",
            "DROP INDEX swapline_tasks_by_idempotency_key",
            """
            CREATE UNIQUE INDEX swapline_tasks_by_owner_and_idempotency_key ON swapline_tasks (owner, idempotency_key)
                WHERE idempotency_key IS NOT NULL
            """,
        ],
        // Quotas: a create counts its owner's open tasks, and the PENDING tasks, off an index,
        // stopping at the cap; the PENDING age sweep reads the longest waiting first.
        [
            "CREATE INDEX swapline_tasks_open_by_owner ON swapline_tasks (owner) WHERE state IN ('PENDING', 'PROCESSING')",
            "CREATE INDEX swapline_tasks_pending_by_age ON swapline_tasks (updated_at) WHERE state = 'PENDING'",
        ],
        // Listing and statistics (ListTasks, GetQueueStats, Task.history): pages walk an index in
        // creation order per state (and owner); the last minute's finishes are a range of
        // swapline_tasks_finished_by_age, or for one owner of swapline_tasks_finished_by_owner.
        // Counts per owner, workflow and state are kept by triggers as +1/-1 rows appended in the
        // changing transaction (an append takes no lock another transaction could wait on, as a
        // shared counter row would); `compactCountChanges` folds them into one row per key.
        [
            "ALTER TABLE swapline_tasks ADD COLUMN history text NOT NULL DEFAULT ''",
            "CREATE INDEX swapline_tasks_by_state_and_creation ON swapline_tasks (state, created_at, task_id)",
            "CREATE INDEX swapline_tasks_by_owner_state_and_creation ON swapline_tasks (owner, state, created_at, task_id)",
            """
            CREATE INDEX swapline_tasks_finished_by_owner ON swapline_tasks (owner, updated_at)
                WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED')
            """,
            """
            CREATE TABLE swapline_task_count_changes (
                owner    text NOT NULL,
                workflow text NOT NULL,
                state    text NOT NULL,
                delta    bigint NOT NULL
            )
            """,
            """
            INSERT INTO swapline_task_count_changes
                SELECT owner, workflow, state, count(*) FROM swapline_tasks GROUP BY owner, workflow, state
            """,
            """
            CREATE FUNCTION swapline_count_task_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' THEN
                    INSERT INTO swapline_task_count_changes VALUES (OLD.owner, OLD.workflow, OLD.state, -1);
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    INSERT INTO swapline_task_count_changes VALUES (NEW.owner, NEW.workflow, NEW.state, 1);
                END IF;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER swapline_tasks_counted AFTER INSERT OR DELETE ON swapline_tasks
                FOR EACH ROW EXECUTE FUNCTION swapline_count_task_change()
            """,
            """
            CREATE TRIGGER swapline_tasks_recounted AFTER UPDATE OF state, owner, workflow ON swapline_tasks
                FOR EACH ROW WHEN (OLD.state <> NEW.state OR OLD.owner <> NEW.owner OR OLD.workflow <> NEW.workflow)
                EXECUTE FUNCTION swapline_count_task_change()
            """,
        ],
    ]

    /// Serializes the folding of count changes (`pg_advisory_xact_lock`; "SWAPCNTS" in ASCII).
    static let countCompactionLockKey: Int64 = 0x5357_4150_434E_5453

    /// Folds the count changes committed so far into one row per owner, workflow and state.
    /// Run after taking `countCompactionLockKey` in the same transaction, so that two foldings
    /// never overlap; changes committed meanwhile stay for the next one.
    static let compactCountChanges = """
        WITH moved AS (DELETE FROM swapline_task_count_changes RETURNING owner, workflow, state, delta)
        INSERT INTO swapline_task_count_changes
            SELECT owner, workflow, state, sum(delta) FROM moved GROUP BY owner, workflow, state HAVING sum(delta) <> 0
        """

    /// Brings the database's schema up to date; refuses a schema newer than this build.
    static func migrate(_ connection: PostgresConnection, location: PostgresStoreLocation, logger: Logger) async throws {
        try await connection.inTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS swapline_schema_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied = 0
            for try await version in try await connection.query(
                "SELECT coalesce(max(version), 0)::bigint FROM swapline_schema_migrations", logger: logger
            ).decode(Int64.self) {
                applied = Int(version)
            }
            guard applied <= migrations.count else {
                throw TaskStoreOpenError(
                    .newerSchema, path: location.description,
                    reason: "its schema version \(applied) is newer than this build knows (\(migrations.count)); run a newer swapline")
            }
            for (index, statements) in migrations.enumerated().dropFirst(applied) {
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO swapline_schema_migrations (version) VALUES (\(index + 1))", logger: logger)
                logger.notice("PostgreSQL store \(location): applied schema version \(index + 1)")
            }
        }
    }
}
