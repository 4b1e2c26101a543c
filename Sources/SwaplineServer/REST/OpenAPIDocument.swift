import RPCCore
import SwaplineMessages

/// The OpenAPI 3.1 description of the REST shim. This value is the one source: the server
/// serves it at `/openapi.json`, `swapline openapi` prints it into `docs/openapi.json`, and a
/// test checks that the committed file is the same.
public enum OpenAPIDocument {
    /// Pretty-printed (two-space indent, a final newline), as committed.
    public static func serialized() -> [UInt8] {
        document.serialized(indent: 2)
    }

    static var document: JSONValue {
        .object([
            ("openapi", "3.1.0"),
            ("info", .object([
                ("title", "Swapline REST API"),
                ("version", "1.0.0"),
                ("description", """
                    The legacy FastAPI routes of the FaceFusion task service, served by Swapline beside \
                    gRPC on the same port (HTTP/1.1 and HTTP/2). Each route calls the RPC of \
                    proto/swapline/v1/tasks.proto named in its description.
                    """),
            ])),
            ("paths", paths),
            ("components", .object([("schemas", schemas), ("securitySchemes", securitySchemes)])),
        ])
    }

    // MARK: - Paths

    private static var paths: JSONValue {
        .object([
            ("/api/face-swap/create-task", .object([("post", operation(
                "createTask", "Queue a face-swap task", rpc: Swapline_V1_TaskService.createTask.descriptor,
                body: "CreateTaskRequest", ok: ("Task queued", "CreateTaskResponse"),
                links: [("GetTask", "getTask"), ("CancelTask", "cancelTask")],
                errors: [400, 413, 415, 422, 429, 503]))])),
            ("/api/face-swap/process", .object([("post", operation(
                "processSync", "Run a face swap and wait for its result", rpc: Swapline_V1_TaskService.processSync.descriptor,
                body: "ProcessRequest", ok: ("The finished task (status success, failed or cancelled)", "FaceSwapResponse"),
                errors: [400, 413, 415, 422, 429, 503, 504]))])),
            ("/api/face-swap/task/{task_id}", .object([
                ("parameters", .array([taskIDParameter])),
                ("get", operation("getTask", "A task in the unified format, with its history", rpc: Swapline_V1_TaskService.getTask.descriptor,
                    ok: ("The task", "TaskWithHistory"), errors: [400, 404])),
            ])),
            ("/api/face-swap/task/{task_id}/cancel", .object([
                ("parameters", .array([taskIDParameter])),
                ("post", operation("cancelTask", "Cancel a pending or processing task", rpc: Swapline_V1_TaskService.cancelTask.descriptor,
                    ok: ("The task after cancellation (a finished task is returned unchanged)", "Task"), errors: [400, 404, 503])),
            ])),
            ("/api/face-swap/task/{task_id}/events", .object([
                ("parameters", .array([taskIDParameter])),
                ("get", operation("watchTask", "Follow a task as server-sent events", rpc: Swapline_V1_TaskService.watchTask.descriptor,
                    events: "One event per change, `id:` the change's sequence and `data:` the task in the unified format; the stream ends after a terminal state.",
                    errors: [400, 404])),
            ])),
            ("/api/face-swap/tasks", .object([("get", operation(
                "listTasks", "A page of tasks, newest first (a client token sees its own, an admin token all)",
                rpc: Swapline_V1_TaskService.listTasks.descriptor,
                parameters: [
                    queryParameter("status", "Only tasks in these states; repeat or separate with commas. All when absent.",
                        .object([("type", "string"), ("pattern", .string(ListingJSON.statusListPattern))])),
                    queryParameter("workflow", "Only tasks of this workflow.", .object([("type", "string")])),
                    queryParameter("created_after_ms", "Only tasks created at or after this Unix time in milliseconds.", .object([("type", "integer"), ("minimum", .integer(0))])),
                    queryParameter("created_before_ms", "Only tasks created before this Unix time in milliseconds.", .object([("type", "integer"), ("minimum", .integer(0))])),
                    queryParameter("idempotency_key", "Only the task the caller created with this key.", .object([("type", "string")])),
                    queryParameter("page_size", "Tasks per page: default 50, at most 1000.", .object([("type", "integer"), ("minimum", .integer(0)), ("maximum", .integer(1000))])),
                    queryParameter("page_token", "`next_page_token` of the previous page, with the same filters.", .object([("type", "string")])),
                ],
                ok: ("A page of tasks", "TaskPage"), errors: [400, 422, 503]))])),
            ("/api/face-swap/stats", .object([("get", operation(
                "queueStats", "Counts by workflow and state, the oldest pending task's age, leases and the last minute's outcomes",
                rpc: Swapline_V1_TaskService.getQueueStats.descriptor,
                parameters: [queryParameter("workflow", "Only this workflow. All when absent.", .object([("type", "string")]))],
                ok: ("The queue's figures", "QueueStats"), errors: [422, 503]))])),
            ("/api/comm/task/fetch", .object([("get", operation(
                "fetchTask", "Lease the next queued task (consumers)", rpc: Swapline_V1_ConsumerService.fetchTask.descriptor,
                parameters: [
                    queryParameter("consumer_id", "Who is fetching (logged with the lease).", .object([("type", "string")])),
                    queryParameter("workflow", "Workflows served; repeat or separate with commas. All when absent.", .object([("type", "string")])),
                    queryParameter("wait_ms", "Long-poll up to this many milliseconds (capped by the server); 0 answers at once.",
                        .object([("type", "integer"), ("minimum", .integer(0)), ("maximum", .integer(Int64(Int32.max)))])),
                ],
                ok: ("The leased task, now PROCESSING, with its lease", "FetchedTask"), noContent: "Nothing is queued",
                errors: [400, 422]))])),
            ("/api/comm/task/update", .object([("post", operation(
                "updateStatus", "Report progress, a result or a failure (consumers)", rpc: Swapline_V1_ConsumerService.updateStatus.descriptor,
                body: "UpdateStatusRequest", ok: ("The task after the update", "Task"),
                errors: [400, 404, 409, 413, 415, 422, 503]))])),
            ("/health", .object([("get", operation(
                "health", "Whether the server takes work", rpc: Grpc_Health_V1_Health.check.descriptor,
                ok: ("Serving", "Health"), unavailable: "Shutting down", errors: []))])),
            ("/openapi.json", .object([("get", .object([
                ("operationId", "openAPI"), ("summary", "This document"),
                ("responses", .object([("200", .object([
                    ("description", "The OpenAPI 3.1 document"),
                    ("content", .object([("application/json", .object([("schema", .object([("type", "object")]))]))])),
                ]))])),
            ]))])),
        ])
    }

    /// Bearer tokens (docs/security.md); a server with no tokens configured checks none.
    private static var securitySchemes: JSONValue {
        .object([("bearerAuth", .object([
            ("type", "http"), ("scheme", "bearer"),
            ("description", """
                A token from the server's SWAPLINE_AUTH_TOKENS or --auth-tokens-file: role client for \
                /api/face-swap/*, consumer for /api/comm/task/*, admin for both. Not checked by a server \
                with no tokens configured (loopback only).
                """),
        ]))])
    }

    private static let errorDescriptions: [Int: String] = [
        400: "The RPC refused an argument (INVALID_ARGUMENT), e.g. a URL, model or resolution",
        401: "No valid bearer token (UNAUTHENTICATED); answered with WWW-Authenticate: Bearer",
        403: "The token's role may not call this route (PERMISSION_DENIED)",
        404: "No such task (NOT_FOUND)",
        409: "The task's state does not allow it: wrong lease, finished task (FAILED_PRECONDITION), or cancelled (ABORTED)",
        413: "The body exceeds 1 MiB",
        415: "The body is not application/json",
        422: "The body or query does not fit the schema (FastAPI's validation error list)",
        429: "A limit was reached (RESOURCE_EXHAUSTED)",
        503: "The task store is unavailable (UNAVAILABLE)",
        504: "The task did not finish within 120 s (DEADLINE_EXCEEDED); it stays queued",
    ]

    private static func operation(
        _ id: String, _ summary: String, rpc: MethodDescriptor, parameters: [JSONValue] = [], body: String? = nil,
        ok: (String, String)? = nil, links: [(String, String)] = [], events: String? = nil, noContent: String? = nil,
        unavailable: String? = nil, errors: [Int]
    ) -> JSONValue {
        let needsToken = AccessControl.requiredRole(service: rpc.service) != nil
        let errors = needsToken ? (errors + [401, 403]).sorted() : errors
        var responses: [(String, JSONValue)] = []
        if let (description, schema) = ok {
            guard case .object(var members) = jsonResponse(description, schema) else { preconditionFailure() }
            if !links.isEmpty {
                // The task id a response names feeds the routes that take one.
                members.append(("links", .object(links.map { name, operation in
                    (name, .object([
                        ("operationId", .string(operation)),
                        ("parameters", .object([("task_id", "$response.body#/task_id")])),
                    ]))
                })))
            }
            responses.append(("200", .object(members)))
        }
        if let events {
            responses.append(("200", .object([
                ("description", .string(events)),
                ("content", .object([("text/event-stream", .object([("schema", object(required: ["data"], [
                    ("id", type("string", "The change's sequence number.")),
                    ("event", .object([("type", "string")])),
                    ("data", .object([
                        ("type", "string"), ("contentMediaType", "application/json"), ("contentSchema", ref("Task")),
                    ])),
                ]))]))])),
            ])))
        }
        if let noContent { responses.append(("204", .object([("description", .string(noContent))]))) }
        for code in errors {
            responses.append((String(code), jsonResponse(errorDescriptions[code]!, code == 422 ? "ValidationError" : "HTTPError")))
        }
        if let unavailable { responses.append(("503", jsonResponse(unavailable, "Health"))) }
        var members: [(String, JSONValue)] = [
            ("operationId", .string(id)), ("summary", .string(summary)), ("description", .string("Calls `\(rpc.path)`.")),
        ]
        if !parameters.isEmpty { members.append(("parameters", .array(parameters))) }
        if let body {
            members.append(("requestBody", .object([
                ("required", true),
                ("content", .object([("application/json", .object([("schema", ref(body)), ("example", example(body))]))])),
            ])))
        }
        members.append(("responses", .object(responses)))
        // A bearer token, or none: a server without tokens configured checks none.
        members.append(("security", .array(needsToken ? [.object([("bearerAuth", .array([]))]), .object([])] : [])))
        return .object(members)
    }

    /// The original service's request example (DESIGN.md §1) for the face-swap bodies.
    private static func example(_ body: String) -> JSONValue {
        guard body != "UpdateStatusRequest" else {
            return .object([("task_id", "task_12345"), ("lease_id", "lease_12345"), ("status", "PROCESSING"), ("progress", .number(0.5))])
        }
        return .object([
            ("source_url", "https://example.com/source.jpg"), ("target_url", "https://example.com/target.jpg"),
            ("resolution", "1024x1024"), ("model", "inswapper_128_fp16"),
        ])
    }

    private static func jsonResponse(_ description: String, _ schema: String) -> JSONValue {
        .object([
            ("description", .string(description)),
            ("content", .object([("application/json", .object([("schema", ref(schema))]))])),
        ])
    }

    private static let taskIDParameter: JSONValue = .object([
        ("name", "task_id"), ("in", "path"), ("required", true),
        ("schema", .object([("type", "string"), ("minLength", .integer(1))])),
    ])

    private static func queryParameter(_ name: String, _ description: String, _ schema: JSONValue) -> JSONValue {
        .object([("name", .string(name)), ("in", "query"), ("required", false), ("description", .string(description)), ("schema", schema)])
    }

    private static func ref(_ schema: String) -> JSONValue {
        .object([("$ref", .string("#/components/schemas/\(schema)"))])
    }

    // MARK: - Schemas

    private static func object(required: [String] = [], _ properties: [(String, JSONValue)], description: String? = nil) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", "object")]
        if let description { members.append(("description", .string(description))) }
        if !required.isEmpty { members.append(("required", .array(required.map { .string($0) }))) }
        members.append(("properties", .object(properties)))
        return .object(members)
    }

    /// A request body: like FastAPI's `Optional[...] = None` fields, the optional ones accept null.
    private static func request(required: [String], _ properties: [(String, JSONValue)]) -> JSONValue {
        object(required: required, properties.map { name, schema in (name, required.contains(name) ? schema : nullable(schema)) })
    }

    private static func nullable(_ schema: JSONValue) -> JSONValue {
        guard case .object(var members) = schema, let index = members.firstIndex(where: { $0.0 == "type" }),
            case .string(let type) = members[index].1
        else { return .object([("oneOf", [schema, .object([("type", "null")])])]) }
        members[index].1 = [.string(type), "null"]
        return .object(members)
    }

    private static func type(_ name: String, _ description: String, _ extra: [(String, JSONValue)] = []) -> JSONValue {
        .object([("type", .string(name)), ("description", .string(description))] + extra)
    }

    private static let stringMap: JSONValue = .object([("type", "object"), ("additionalProperties", .object([("type", "string")]))])
    private static let statusEnum: JSONValue = .object([
        ("type", "string"), ("enum", .array(LegacyJSON.statusNames.map { .string($0.1) })),
    ])
    private static let int32: [(String, JSONValue)] = [
        ("format", "int32"), ("minimum", .integer(Int64(Int32.min))), ("maximum", .integer(Int64(Int32.max))),
    ]

    private static var faceSwapFields: [(String, JSONValue)] {
        [
            ("source_url", type("string", "Absolute http(s) URL of the face image: at most 2048 bytes, no userinfo, not a loopback, private or other special-purpose address nor localhost (docs/security.md).")),
            ("target_url", type("string", "Absolute http(s) URL of the image or video to swap into; the rules of source_url.")),
            ("resolution", type("string", "`WxH`, a size the model supports; default 1024x1024.")),
            ("model", type("string", "FaceFusion face-swapper model; default inswapper_128_fp16.")),
            ("options", stringMap),
        ]
    }

    private static var taskProperties: [(String, JSONValue)] {
        [
            ("taskId", type("string", "`task_` and a time-sortable id.")),
            ("workflow", type("string", "Processor of the task, e.g. face_swap.")),
            ("environment", type("string", "Environment of the original unified format.")),
            ("target_port", type("integer", "Port of the server that took the task.")),
            ("params", object(required: ["input_data"], [
                ("input_data", object(required: ["wf_json"], [
                    ("wf_json", object(required: ["source_url", "target_url", "resolution", "model"], faceSwapFields)),
                ])),
            ])),
            ("status", statusEnum),
            ("source_channel", type("string", "Base URL of the server that took the task.")),
            ("created_at", type("string", "UTC, `YYYY-MM-DDTHH:MM:SS`.")),
            ("updated_at", type("string", "UTC, `YYYY-MM-DDTHH:MM:SS`.")),
            ("progress", type("number", "0 to 1, reported by the consumer.")),
            ("attempt", type("integer", "Deliveries so far.")),
            ("priority", type("integer", "Higher is fetched first.")),
            ("error", .object([("type", .array(["string", "null"])), ("description", "Why the task failed.")])),
            ("result", .object([("oneOf", .array([ref("TaskResult"), .object([("type", "null")])]))])),
        ]
    }

    private static let taskRequired = [
        "taskId", "workflow", "environment", "target_port", "params", "status", "source_channel", "created_at", "updated_at",
        "progress", "attempt", "priority", "error", "result",
    ]

    private static var schemas: JSONValue {
        .object([
            ("CreateTaskRequest", request(required: ["source_url", "target_url"], faceSwapFields + [
                ("workflow", type("string", "Default face_swap.")),
                ("idempotency_key", type("string", "The same key from the same client (bearer token) returns the same task.")),
                ("priority", type("integer", "Higher is fetched first.", int32)),
            ])),
            ("ProcessRequest", request(required: ["source_url", "target_url"], faceSwapFields)),
            ("CreateTaskResponse", object(required: ["task_id", "status"], [("task_id", .object([("type", "string")])), ("status", statusEnum)])),
            ("Task", object(required: taskRequired, taskProperties, description: "The unified task format.")),
            ("TaskWithHistory", object(
                required: taskRequired + ["history"],
                taskProperties + [("history", .object([("type", "array"), ("items", ref("TaskTransition"))]))],
                description: "The unified task format and the task's changes of state, oldest first (the last 64).")),
            ("TaskTransition", object(required: ["status", "at_ms", "attempt", "note"], [
                ("status", statusEnum),
                ("at_ms", type("integer", "Unix milliseconds.")),
                ("attempt", type("integer", "The task's attempt after the change.")),
                ("note", type("string", "What caused it: the leasing consumer, `lease expired`, an error; may be empty.")),
            ])),
            ("TaskPage", object(required: ["tasks", "next_page_token"], [
                ("tasks", .object([("type", "array"), ("items", ref("Task"))])),
                ("next_page_token", type("string", "Pass as page_token for the next page; empty on the last page.")),
            ])),
            ("QueueStats", object(
                required: ["counts", "oldest_pending_age_ms", "waiting_consumers", "active_leases", "finished_last_minute",
                    "failed_last_minute", "failure_share_last_minute", "generated_at_ms"],
                [
                    ("counts", .object([("type", "array"), ("items", object(required: ["workflow", "status", "count"], [
                        ("workflow", .object([("type", "string")])), ("status", statusEnum), ("count", .object([("type", "integer")])),
                    ]))])),
                    ("oldest_pending_age_ms", type("integer", "How long the oldest PENDING task has waited since it was created; 0 when none.")),
                    ("waiting_consumers", type("integer", "Consumers parked in a fetch on this server (admin tokens only; 0 for client tokens).")),
                    ("active_leases", type("integer", "PROCESSING tasks.")),
                    ("finished_last_minute", type("integer", "Tasks that became COMPLETED, FAILED or CANCELLED in the last 60 s.")),
                    ("failed_last_minute", type("integer", "Of those, FAILED.")),
                    ("failure_share_last_minute", type("number", "failed_last_minute / finished_last_minute; 0 when nothing finished.")),
                    ("generated_at_ms", type("integer", "Unix milliseconds when the figures were read.")),
                ],
                description: "Counts cover the caller's own tasks for a client token, every task for an admin token.")),
            ("FetchedTask", object(
                required: taskRequired + ["lease_id", "lease_expires_at", "lease_expires_at_ms"],
                taskProperties + [
                    ("lease_id", type("string", "Report updates with it.")),
                    ("lease_expires_at", type("string", "UTC, `YYYY-MM-DDTHH:MM:SS`.")),
                    ("lease_expires_at_ms", type("integer", "Unix milliseconds.")),
                ])),
            ("TaskResult", object(required: ["output_url", "outputs", "processing_time", "job_id", "storage_provider", "output_providers"], [
                ("output_url", type("string", "URL of the main result (jpg).")),
                ("outputs", stringMap),
                ("processing_time", type("number", "Seconds.")),
                ("job_id", .object([("type", "string")])),
                ("storage_provider", .object([("type", "string")])),
                ("output_providers", stringMap),
                ("files_expired_at_ms", type("integer", "Unix milliseconds: when --result-lifetime queued the stored files for deletion (the URLs stop working). Absent while they are kept.")),
            ])),
            ("FaceSwapResponse", object(required: ["status", "output_path", "processing_time", "job_id", "metadata", "task_id"], [
                ("status", .object([("type", "string"), ("enum", .array(["success", "failed", "cancelled"]))])),
                ("output_path", .object([("type", "string")])),
                ("processing_time", .object([("type", "number")])),
                ("job_id", .object([("type", "string")])),
                ("metadata", stringMap),
                ("task_id", .object([("type", "string")])),
            ])),
            ("UpdateStatusRequest", request(required: ["task_id", "lease_id", "status"], [
                ("task_id", .object([("type", "string")])),
                ("lease_id", type("string", "From the fetch.")),
                ("status", statusEnum),
                ("progress", type("number", "0 to 1, with PROCESSING.")),
                ("message", .object([("type", "string")])),
                ("result", ref("TaskResultInput")),
                ("error", type("string", "Required with FAILED.")),
            ])),
            ("TaskResultInput", request(required: [], [
                ("output_url", .object([("type", "string")])),
                ("outputs", stringMap),
                ("processing_time", .object([("type", "number")])),
                ("job_id", .object([("type", "string")])),
                ("storage_provider", .object([("type", "string")])),
                ("output_providers", stringMap),
            ])),
            ("Health", object(required: ["status", "serving_status"], [
                ("status", .object([("type", "string"), ("enum", .array(["ok", "unavailable"]))])),
                ("serving_status", .object([("type", "string"), ("enum", .array(["SERVING", "NOT_SERVING"]))])),
            ])),
            ("HTTPError", object(required: ["detail"], [("detail", .object([("type", "string")]))])),
            ("ValidationError", object(required: ["detail"], [("detail", .object([
                ("type", "array"),
                ("items", object(required: ["type", "loc", "msg"], [
                    ("type", .object([("type", "string")])),
                    ("loc", .object([("type", "array"), ("items", .object([("type", .array(["string", "integer"]))]))])),
                    ("msg", .object([("type", "string")])),
                    ("input", .object([])),
                    ("ctx", .object([("type", "object")])),
                ])),
            ]))])),
        ])
    }
}
