import SwaplineCore

/// The JSON shapes of the original FastAPI service (DESIGN.md §1), written from the swapline.v1
/// messages: what the REST shim answers and what the CLI's `--json` prints, from one encoder.
/// (The REST shim's readers of request bodies extend this type in SwaplineServer.)
public enum LegacyJSON {
    /// The unified task format, with the newer fields (progress, attempt, priority, error,
    /// result) after the original ones.
    public static func task(_ task: Swapline_V1_Task) -> [(String, JSONValue)] {
        let params = task.params ?? Swapline_V1_FaceSwapParams()
        var wfJSON: [(String, JSONValue)] = [
            ("source_url", .string(params.sourceURL)), ("target_url", .string(params.targetURL)),
            ("resolution", .string(params.resolution)), ("model", .string(params.model)),
        ]
        if !params.options.isEmpty { wfJSON.append(("options", stringMap(params.options))) }
        return [
            ("taskId", .string(task.taskID)),
            ("workflow", .string(task.workflow)),
            ("environment", .string(task.environment)),
            ("target_port", .integer(Int64(task.targetPort))),
            ("params", .object([("input_data", .object([("wf_json", .object(wfJSON))]))])),
            ("status", .string(statusName(task.status))),
            ("source_channel", .string(task.sourceChannel)),
            ("created_at", .string(isoTimestamp(milliseconds: task.createdAtMs))),
            ("updated_at", .string(isoTimestamp(milliseconds: task.updatedAtMs))),
            ("progress", .float(task.progress)),
            ("attempt", .integer(Int64(task.attempt))),
            ("priority", .integer(Int64(task.priority))),
            ("error", task.error.isEmpty ? .null : .string(task.error)),
            ("result", task.result.map { .object(result($0)) } ?? .null),
        ]
    }

    public static func result(_ result: Swapline_V1_TaskResult) -> [(String, JSONValue)] {
        [
            ("output_url", .string(result.outputURL)), ("outputs", stringMap(result.outputs)),
            ("processing_time", .number(result.processingTime)), ("job_id", .string(result.jobID)),
            ("storage_provider", .string(result.storageProvider)), ("output_providers", stringMap(result.outputProviders)),
        ] + (result.filesExpiredAtMs == 0 ? [] : [("files_expired_at_ms", .integer(result.filesExpiredAtMs))])
    }

    /// What `create-task` answers: the original `{"task_id": ..., "status": ...}`.
    public static func created(_ task: Swapline_V1_Task) -> JSONValue {
        .object([("task_id", .string(task.taskID)), ("status", .string(statusName(task.status)))])
    }

    /// A leased task: the unified task plus the lease a consumer reports with.
    public static func fetched(_ response: Swapline_V1_FetchTaskResponse, task: Swapline_V1_Task) -> JSONValue {
        .object(
            self.task(task) + [
                ("lease_id", .string(response.leaseID)),
                ("lease_expires_at", .string(isoTimestamp(milliseconds: response.leaseExpiresAtMs))),
                ("lease_expires_at_ms", .integer(response.leaseExpiresAtMs)),
            ])
    }

    public static func faceSwapResponse(_ response: Swapline_V1_FaceSwapResponse) -> JSONValue {
        .object([
            ("status", .string(response.status)), ("output_path", .string(response.outputPath)),
            ("processing_time", .number(response.processingTime)), ("job_id", .string(response.jobID)),
            ("metadata", stringMap(response.metadata, leading: ["gif_url", "webp_url", "storage_url", "storage_provider"])),
            ("task_id", .string(response.taskID)),
        ])
    }

    /// What `GET /api/face-swap/task/{id}` answers: the unified task, then its `history`.
    public static func taskWithHistory(_ task: Swapline_V1_Task) -> JSONValue {
        .object(self.task(task) + [("history", history(task.history))])
    }

    /// The `history` key: each change of state, oldest first.
    public static func history(_ history: [Swapline_V1_TaskTransition]) -> JSONValue {
        .array(history.map { transition in
            .object([
                ("status", .string(statusName(transition.status))), ("at_ms", .integer(transition.atMs)),
                ("attempt", .integer(Int64(transition.attempt))), ("note", .string(transition.note)),
            ])
        })
    }

    /// `GET /api/face-swap/tasks`: `{"tasks": [unified task JSON…], "next_page_token": "…"}`.
    public static func taskList(_ response: Swapline_V1_ListTasksResponse) -> JSONValue {
        .object([
            ("tasks", .array(response.tasks.map { .object(task($0)) })),
            ("next_page_token", .string(response.nextPageToken)),
        ])
    }

    /// `GET /api/face-swap/stats`: QueueStats' fields by their proto names, states named as in
    /// the task JSON.
    public static func queueStats(_ stats: Swapline_V1_QueueStats) -> JSONValue {
        .object([
            ("counts", .array(stats.counts.map { count in
                .object([
                    ("workflow", .string(count.workflow)), ("status", .string(statusName(count.status))),
                    ("count", .integer(count.count)),
                ])
            })),
            ("oldest_pending_age_ms", .integer(stats.oldestPendingAgeMs)),
            ("waiting_consumers", .integer(Int64(stats.waitingConsumers))),
            ("active_leases", .integer(stats.activeLeases)),
            ("finished_last_minute", .integer(stats.finishedLastMinute)),
            ("failed_last_minute", .integer(stats.failedLastMinute)),
            ("failure_share_last_minute", .number(stats.failureShareLastMinute)),
            ("generated_at_ms", .integer(stats.generatedAtMs)),
        ])
    }

    public static let statusNames: [(Swapline_V1_TaskStatus, String)] = [
        (.pending, "PENDING"), (.processing, "PROCESSING"), (.completed, "COMPLETED"), (.failed, "FAILED"),
        (.cancelled, "CANCELLED"),
    ]

    public static func statusName(_ status: Swapline_V1_TaskStatus) -> String {
        statusNames.first { $0.0 == status }?.1 ?? "UNSPECIFIED"
    }

    /// `2025-01-30T12:00:00`: UTC, to the second, without a zone suffix, like the original's
    /// `datetime.isoformat()` values.
    public static func isoTimestamp(milliseconds: Int64) -> String {
        UTCTimestamp.format(millisecondsSince1970: milliseconds, withMilliseconds: false)
    }

    /// Keys named in `leading` first, in that order, then the rest sorted: maps have no order
    /// of their own, and the same task must always serialize to the same bytes.
    private static func stringMap(_ map: [String: String], leading: [String] = []) -> JSONValue {
        let first = leading.filter { map[$0] != nil }
        let rest = map.keys.filter { !leading.contains($0) }.sorted()
        return .object((first + rest).map { ($0, .string(map[$0]!)) })
    }
}
