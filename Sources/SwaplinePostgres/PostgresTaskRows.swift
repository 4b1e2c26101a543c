#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import PostgresNIO
import SwaplineCore

/// How a task is laid out in a row of `swapline_tasks`, and the statements that read and write
/// rows. Reads select each row as `row_to_json(t)::text`, the same form the change trigger sends,
/// so one decoder serves queries and notifications.
enum PostgresTaskRows {
    /// Inserts the task, or replaces the stored one when `record` is newer (a higher version);
    /// a stored newer version is kept, so writing an old copy again changes nothing.
    static func save(_ record: TaskRecord) -> PostgresQuery {
        insert(record, onConflict: saveConflictClause)
    }

    /// Writes what `TaskRules` may change (state, progress, error, result, attempts, lease,
    /// version) over the stored row, which the caller holds locked.
    static func update(_ record: TaskRecord) -> PostgresQuery {
        let output = record.output
        let lease = record.lease
        let progress = Double(record.progress)
        let outputs = output.map { encode($0.outputs) }
        return """
            UPDATE swapline_tasks SET
                state = \(record.state.rawValue), updated_at = \(record.updatedAtMs), progress = \(progress),
                error = \(record.error), output_url = \(output?.outputURL), outputs = \(outputs)::jsonb,
                processing_time = \(output?.processingTime), job_id = \(output?.jobID),
                storage_provider = \(output?.storageProvider), attempt = \(record.attempt), lease_id = \(lease?.id),
                lease_consumer = \(lease?.consumerID), lease_expires_at = \(lease?.expiresAtMs), version = \(record.version),
                history = \(TaskHistory.text(record.history))
            WHERE task_id = \(record.taskID)
            """
    }

    /// Inserts a new task unless its id or its owner's idempotency key is taken; answers its id when it
    /// went in, no row when it did not.
    static func insertNew(_ record: TaskRecord) -> PostgresQuery {
        insert(record, onConflict: "ON CONFLICT DO NOTHING RETURNING task_id")
    }

    private static let saveConflictClause = """
        ON CONFLICT (task_id) DO UPDATE SET
            workflow = excluded.workflow, environment = excluded.environment, target_port = excluded.target_port,
            source_url = excluded.source_url, target_url = excluded.target_url, resolution = excluded.resolution,
            model = excluded.model, options = excluded.options, state = excluded.state,
            source_channel = excluded.source_channel, created_at = excluded.created_at,
            updated_at = excluded.updated_at, progress = excluded.progress, error = excluded.error,
            output_url = excluded.output_url, outputs = excluded.outputs,
            processing_time = excluded.processing_time, job_id = excluded.job_id,
            storage_provider = excluded.storage_provider, attempt = excluded.attempt, priority = excluded.priority,
            idempotency_key = excluded.idempotency_key, lease_id = excluded.lease_id,
            lease_consumer = excluded.lease_consumer, lease_expires_at = excluded.lease_expires_at,
            version = excluded.version, owner = excluded.owner, history = excluded.history
        WHERE swapline_tasks.version < excluded.version
        """

    private static func insert(_ record: TaskRecord, onConflict conflictClause: String) -> PostgresQuery {
        let output = record.output
        let lease = record.lease
        let progress = Double(record.progress)
        let options = encode(record.params.options)
        let outputs = output.map { encode($0.outputs) }
        return """
            INSERT INTO swapline_tasks (
                task_id, workflow, environment, target_port, source_url, target_url, resolution, model, options,
                state, source_channel, created_at, updated_at, progress, error, output_url, outputs, processing_time,
                job_id, storage_provider, attempt, priority, idempotency_key, lease_id, lease_consumer, lease_expires_at,
                version, owner, history)
            VALUES (
                \(record.taskID), \(record.workflow), \(record.environment), \(record.targetPort),
                \(record.params.sourceURL), \(record.params.targetURL), \(record.params.resolution), \(record.params.model),
                \(options)::jsonb, \(record.state.rawValue), \(record.sourceChannel), \(record.createdAtMs),
                \(record.updatedAtMs), \(progress), \(record.error), \(output?.outputURL), \(outputs)::jsonb,
                \(output?.processingTime), \(output?.jobID), \(output?.storageProvider), \(record.attempt),
                \(record.priority), \(record.idempotencyKey), \(lease?.id), \(lease?.consumerID), \(lease?.expiresAtMs),
                \(record.version), \(record.owner), \(TaskHistory.text(record.history)))
            \(unescaped: conflictClause)
            """
    }

    /// Decodes a task from `row_to_json` text.
    static func record(fromJSON json: String) throws -> TaskRecord {
        try JSONDecoder().decode(Row.self, from: Data(json.utf8)).record
    }

    /// The task id of a notification that only announces a change (`{"task_id": …, "version": …}`).
    static func announcedTaskID(_ json: String) -> String? {
        struct Announcement: Decodable { var task_id: String }
        return try? JSONDecoder().decode(Announcement.self, from: Data(json.utf8)).task_id
    }

    /// Decodes every row of a query that selects `row_to_json(t)::text`.
    static func records(_ rows: PostgresRowSequence) async throws -> [TaskRecord] {
        var records: [TaskRecord] = []
        for try await json in rows.decode(String.self) {
            records.append(try record(fromJSON: json))
        }
        return records
    }

    private static func encode(_ map: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // A [String: String] always encodes.
        return String(decoding: (try? encoder.encode(map)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// A row as `row_to_json` spells it: column names as keys, jsonb columns as objects.
    private struct Row: Decodable {
        // Spelled out rather than `.convertFromSnakeCase`, which converts every key of every
        // row again and was a tenth of the server's CPU under load.
        enum CodingKeys: String, CodingKey {
            case taskId = "task_id", workflow, environment, targetPort = "target_port", sourceUrl = "source_url"
            case targetUrl = "target_url", resolution, model, options, state, sourceChannel = "source_channel"
            case createdAt = "created_at", updatedAt = "updated_at", progress, error, outputUrl = "output_url", outputs
            case processingTime = "processing_time", jobId = "job_id", storageProvider = "storage_provider", attempt
            case priority, idempotencyKey = "idempotency_key", leaseId = "lease_id", leaseConsumer = "lease_consumer"
            case leaseExpiresAt = "lease_expires_at", version, owner, history
        }

        var taskId: String
        var workflow: String
        var environment: String
        var targetPort: Int32
        var sourceUrl: String
        var targetUrl: String
        var resolution: String
        var model: String
        var options: [String: String]
        var state: String
        var sourceChannel: String
        var createdAt: Int64
        var updatedAt: Int64
        var progress: Double
        var error: String
        var outputUrl: String?
        var outputs: [String: String]?
        var processingTime: Double?
        var jobId: String?
        var storageProvider: String?
        var attempt: Int32
        var priority: Int32
        var idempotencyKey: String?
        var leaseId: String?
        var leaseConsumer: String?
        var leaseExpiresAt: Int64?
        var version: Int64
        var owner: String?
        var history: String?

        var record: TaskRecord {
            let output = outputUrl.map { url in
                TaskOutput(
                    outputURL: url, outputs: outputs ?? [:], processingTime: processingTime ?? 0, jobID: jobId ?? "",
                    storageProvider: storageProvider ?? "")
            }
            let lease = leaseId.map { Lease(id: $0, consumerID: leaseConsumer ?? "", expiresAtMs: leaseExpiresAt ?? 0) }
            return TaskRecord(
                taskID: taskId, workflow: workflow, environment: environment, targetPort: targetPort,
                params: FaceSwapParameters(
                    sourceURL: sourceUrl, targetURL: targetUrl, resolution: resolution, model: model, options: options),
                state: TaskState(rawValue: state) ?? .failed, sourceChannel: sourceChannel, createdAtMs: createdAt,
                updatedAtMs: updatedAt, progress: Float(progress), error: error, output: output, attempt: attempt,
                priority: priority, idempotencyKey: idempotencyKey, owner: owner ?? "", lease: lease, version: version,
                history: TaskHistory.parse(history ?? ""))
        }
    }
}
