import RPCCore

/// The routes of the original FastAPI service (plus health and the OpenAPI document), each
/// answered by one RPC.
enum RESTRoute: Equatable, Sendable {
    case createTask
    case processSync
    case getTask(String)
    case cancelTask(String)
    case watchTask(String)
    case listTasks
    case queueStats
    case fetchTask
    case updateStatus
    case health
    case openAPI
    /// A stored result file: `/outputs/{task_id}/{key}/{file}` (or `/outputs/{task_id}/{file}`,
    /// where results stored before the unguessable key stay), as path components.
    case output(path: [String])

    /// Routes that change the queue's state (fetch leases a task although it is a GET): they
    /// refuse cross-site browser requests.
    var changesState: Bool {
        switch self {
        case .createTask, .processSync, .cancelTask, .fetchTask, .updateStatus: return true
        case .getTask, .watchTask, .listTasks, .queueStats, .health, .openAPI, .output: return false
        }
    }

    /// Routes that read a JSON body.
    var takesBody: Bool {
        switch self {
        case .createTask, .processSync, .updateStatus: return true
        case .getTask, .cancelTask, .watchTask, .listTasks, .queueStats, .fetchTask, .health, .openAPI, .output: return false
        }
    }

    private enum Segment: Sendable {
        case literal(String)
        case taskID
    }

    private struct Pattern: Sendable {
        var method: String
        var segments: [Segment]
        var make: @Sendable (String) -> RESTRoute
    }

    private static let patterns: [Pattern] = [
        Pattern(method: "POST", segments: [.literal("api"), .literal("face-swap"), .literal("create-task")]) { _ in .createTask },
        Pattern(method: "POST", segments: [.literal("api"), .literal("face-swap"), .literal("process")]) { _ in .processSync },
        Pattern(method: "GET", segments: [.literal("api"), .literal("face-swap"), .literal("task"), .taskID]) { .getTask($0) },
        Pattern(method: "POST", segments: [.literal("api"), .literal("face-swap"), .literal("task"), .taskID, .literal("cancel")]) {
            .cancelTask($0)
        },
        Pattern(method: "GET", segments: [.literal("api"), .literal("face-swap"), .literal("task"), .taskID, .literal("events")]) {
            .watchTask($0)
        },
        Pattern(method: "GET", segments: [.literal("api"), .literal("face-swap"), .literal("tasks")]) { _ in .listTasks },
        Pattern(method: "GET", segments: [.literal("api"), .literal("face-swap"), .literal("stats")]) { _ in .queueStats },
        Pattern(method: "GET", segments: [.literal("api"), .literal("comm"), .literal("task"), .literal("fetch")]) { _ in .fetchTask },
        Pattern(method: "POST", segments: [.literal("api"), .literal("comm"), .literal("task"), .literal("update")]) { _ in .updateStatus },
        Pattern(method: "GET", segments: [.literal("health")]) { _ in .health },
        Pattern(method: "GET", segments: [.literal("openapi.json")]) { _ in .openAPI },
    ]

    /// The route for a request, or what FastAPI answers when there is none: 404 for an unknown
    /// path, 405 (with the allowed methods) for a known path and another method.
    static func match(method: String, path: Substring) -> Result<RESTRoute, RESTError> {
        guard path.first == "/" else { return .failure(.notFound) }
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 3 || parts.count == 4, parts[0] == "outputs" {
            // Names never climb out of the storage directory.
            let names = parts.dropFirst().map { GRPCMessageEncoding.decode(String($0)) }
            guard !names.contains(where: { $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }) else {
                return .failure(.badRequest("Control characters (such as %00) are not allowed in an output path"))
            }
            guard names.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("/") }) else { return .failure(.notFound) }
            return method == "GET" ? .success(.output(path: names)) : .failure(.methodNotAllowed(allowed: ["GET"]))
        }
        var allowed: [String] = []
        for pattern in patterns {
            guard let taskID = Self.bind(pattern.segments, to: parts) else { continue }
            if pattern.method == method { return .success(pattern.make(taskID)) }
            allowed.append(pattern.method)
        }
        return .failure(allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed))
    }

    /// The task id the path binds (empty when the pattern has none), `nil` if it does not match.
    private static func bind(_ segments: [Segment], to parts: [Substring]) -> String? {
        guard segments.count == parts.count else { return nil }
        var taskID = ""
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let text):
                guard part == text else { return nil }
            case .taskID:
                guard !part.isEmpty else { return nil }
                taskID = GRPCMessageEncoding.decode(String(part))
            }
        }
        return taskID
    }
}
