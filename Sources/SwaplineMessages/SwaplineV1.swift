// Swift values of proto/swapline/v1/tasks.proto (package swapline.v1). Field meanings,
// units and defaults are documented in the .proto file.
internal import CSwaplineProto

/// Lifecycle state of a task (`swapline.v1.TaskStatus`).
public enum Swapline_V1_TaskStatus: ProtoEnum {
    case unspecified, pending, processing, completed, failed, cancelled
    case unrecognized(Int32)

    public static let allCases: [Self] = [.unspecified, .pending, .processing, .completed, .failed, .cancelled]

    public var rawValue: Int32 {
        if case .unrecognized(let value) = self { return value }
        return knownRawValue()
    }
}

/// Input of a face-swap job (`swapline.v1.FaceSwapParams`).
public struct Swapline_V1_FaceSwapParams: Sendable, Equatable {
    public var sourceURL: String
    public var targetURL: String
    public var resolution: String
    public var model: String
    public var options: [String: String]

    public init(
        sourceURL: String = "", targetURL: String = "", resolution: String = "", model: String = "",
        options: [String: String] = [:]
    ) {
        self.sourceURL = sourceURL
        self.targetURL = targetURL
        self.resolution = resolution
        self.model = model
        self.options = options
    }
}

extension Swapline_V1_FaceSwapParams: CBridged {
    init(c: Swapline__V1__FaceSwapParams) throws(FieldDecodingError) {
        self.init(
            sourceURL: try CField.string(c.source_url, field: "source_url", maxBytes: MessageLimits.urlBytes), targetURL: try CField.string(c.target_url, field: "target_url", maxBytes: MessageLimits.urlBytes),
            resolution: try CField.string(c.resolution, field: "resolution", maxBytes: MessageLimits.nameBytes), model: try CField.string(c.model, field: "model", maxBytes: MessageLimits.nameBytes),
            options: try CField.map(c.n_options, c.options, field: "options"))
    }

    func fill(_ c: inout Swapline__V1__FaceSwapParams, arena: inout CArena) {
        c.source_url = arena.cString(sourceURL)
        c.target_url = arena.cString(targetURL)
        c.resolution = arena.cString(resolution)
        c.model = arena.cString(model)
        (c.n_options, c.options) = arena.map(options)
    }
}

/// Outcome of a completed task (`swapline.v1.TaskResult`).
public struct Swapline_V1_TaskResult: Sendable, Equatable {
    public var outputURL: String
    public var outputs: [String: String]
    /// Seconds.
    public var processingTime: Double
    public var jobID: String
    public var storageProvider: String
    /// Format → the provider that stored that output.
    public var outputProviders: [String: String]

    public init(
        outputURL: String = "", outputs: [String: String] = [:], processingTime: Double = 0,
        jobID: String = "", storageProvider: String = "", outputProviders: [String: String] = [:]
    ) {
        self.outputURL = outputURL
        self.outputs = outputs
        self.processingTime = processingTime
        self.jobID = jobID
        self.storageProvider = storageProvider
        self.outputProviders = outputProviders
    }
}

extension Swapline_V1_TaskResult: CBridged {
    init(c: Swapline__V1__TaskResult) throws(FieldDecodingError) {
        self.init(
            outputURL: try CField.string(c.output_url, field: "output_url", maxBytes: MessageLimits.urlBytes), outputs: try CField.map(c.n_outputs, c.outputs, field: "outputs"),
            processingTime: c.processing_time, jobID: try CField.string(c.job_id, field: "job_id", maxBytes: MessageLimits.nameBytes),
            storageProvider: try CField.string(c.storage_provider, field: "storage_provider", maxBytes: MessageLimits.nameBytes),
            outputProviders: try CField.map(c.n_output_providers, c.output_providers, field: "output_providers"))
    }

    func fill(_ c: inout Swapline__V1__TaskResult, arena: inout CArena) {
        c.output_url = arena.cString(outputURL)
        (c.n_outputs, c.outputs) = arena.map(outputs)
        c.processing_time = processingTime
        c.job_id = arena.cString(jobID)
        c.storage_provider = arena.cString(storageProvider)
        (c.n_output_providers, c.output_providers) = arena.map(outputProviders)
    }
}

/// A queued unit of work (`swapline.v1.Task`).
public struct Swapline_V1_Task: Sendable, Equatable {
    public var taskID: String
    public var workflow: String
    public var environment: String
    public var targetPort: Int32
    /// nil when the field is absent on the wire.
    public var params: Swapline_V1_FaceSwapParams?
    public var status: Swapline_V1_TaskStatus
    public var sourceChannel: String
    /// Milliseconds since the Unix epoch.
    public var createdAtMs: Int64
    /// Milliseconds since the Unix epoch.
    public var updatedAtMs: Int64
    /// 0.0 ... 1.0.
    public var progress: Float
    public var error: String
    /// nil when the field is absent on the wire.
    public var result: Swapline_V1_TaskResult?
    public var attempt: Int32
    public var priority: Int32
    /// The task's changes of state, oldest first; filled in GetTask answers only.
    public var history: [Swapline_V1_TaskTransition]

    public init(
        taskID: String = "", workflow: String = "", environment: String = "", targetPort: Int32 = 0,
        params: Swapline_V1_FaceSwapParams? = nil, status: Swapline_V1_TaskStatus = .unspecified,
        sourceChannel: String = "", createdAtMs: Int64 = 0, updatedAtMs: Int64 = 0, progress: Float = 0,
        error: String = "", result: Swapline_V1_TaskResult? = nil, attempt: Int32 = 0, priority: Int32 = 0,
        history: [Swapline_V1_TaskTransition] = []
    ) {
        self.taskID = taskID
        self.workflow = workflow
        self.environment = environment
        self.targetPort = targetPort
        self.params = params
        self.status = status
        self.sourceChannel = sourceChannel
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
        self.progress = progress
        self.error = error
        self.result = result
        self.attempt = attempt
        self.priority = priority
        self.history = history
    }
}

extension Swapline_V1_Task: CBridged {
    init(c: Swapline__V1__Task) throws(FieldDecodingError) {
        self.init(
            taskID: try CField.string(c.task_id, field: "task_id", maxBytes: MessageLimits.idBytes), workflow: try CField.string(c.workflow, field: "workflow", maxBytes: MessageLimits.nameBytes),
            environment: try CField.string(c.environment, field: "environment", maxBytes: MessageLimits.nameBytes), targetPort: c.target_port,
            params: try CField.message(c.params, field: "params"), status: CField.enum(c.status),
            sourceChannel: try CField.string(c.source_channel, field: "source_channel", maxBytes: MessageLimits.nameBytes), createdAtMs: c.created_at_ms,
            updatedAtMs: c.updated_at_ms, progress: c.progress, error: try CField.string(c.error, field: "error", maxBytes: MessageLimits.textBytes),
            result: try CField.message(c.result, field: "result"), attempt: c.attempt, priority: c.priority,
            history: try CField.messages(c.n_history, c.history, field: "history", maxCount: MessageLimits.historyEntries))
    }

    func fill(_ c: inout Swapline__V1__Task, arena: inout CArena) {
        c.task_id = arena.cString(taskID)
        c.workflow = arena.cString(workflow)
        c.environment = arena.cString(environment)
        c.target_port = targetPort
        c.params = arena.message(params)
        c.status = status.c()
        c.source_channel = arena.cString(sourceChannel)
        c.created_at_ms = createdAtMs
        c.updated_at_ms = updatedAtMs
        c.progress = progress
        c.error = arena.cString(error)
        c.result = arena.message(result)
        c.attempt = attempt
        c.priority = priority
        (c.n_history, c.history) = arena.messages(history)
    }
}

/// Request to queue a new task (`swapline.v1.CreateTaskRequest`).
public struct Swapline_V1_CreateTaskRequest: Sendable, Equatable {
    public var workflow: String
    public var params: Swapline_V1_FaceSwapParams?
    public var idempotencyKey: String
    public var priority: Int32

    public init(
        workflow: String = "", params: Swapline_V1_FaceSwapParams? = nil, idempotencyKey: String = "",
        priority: Int32 = 0
    ) {
        self.workflow = workflow
        self.params = params
        self.idempotencyKey = idempotencyKey
        self.priority = priority
    }
}

extension Swapline_V1_CreateTaskRequest: CBridged {
    init(c: Swapline__V1__CreateTaskRequest) throws(FieldDecodingError) {
        self.init(
            workflow: try CField.string(c.workflow, field: "workflow", maxBytes: MessageLimits.nameBytes), params: try CField.message(c.params, field: "params"),
            idempotencyKey: try CField.string(c.idempotency_key, field: "idempotency_key", maxBytes: MessageLimits.idBytes), priority: c.priority)
    }

    func fill(_ c: inout Swapline__V1__CreateTaskRequest, arena: inout CArena) {
        c.workflow = arena.cString(workflow)
        c.params = arena.message(params)
        c.idempotency_key = arena.cString(idempotencyKey)
        c.priority = priority
    }
}

/// Request to run a job synchronously (`swapline.v1.ProcessSyncRequest`).
public struct Swapline_V1_ProcessSyncRequest: Sendable, Equatable {
    public var params: Swapline_V1_FaceSwapParams?

    public init(params: Swapline_V1_FaceSwapParams? = nil) { self.params = params }
}

extension Swapline_V1_ProcessSyncRequest: CBridged {
    init(c: Swapline__V1__ProcessSyncRequest) throws(FieldDecodingError) { self.init(params: try CField.message(c.params, field: "params")) }

    func fill(_ c: inout Swapline__V1__ProcessSyncRequest, arena: inout CArena) { c.params = arena.message(params) }
}

/// Result of a synchronous job (`swapline.v1.FaceSwapResponse`).
public struct Swapline_V1_FaceSwapResponse: Sendable, Equatable {
    public var status: String
    public var outputPath: String
    /// Seconds.
    public var processingTime: Double
    public var jobID: String
    public var metadata: [String: String]
    public var taskID: String

    public init(
        status: String = "", outputPath: String = "", processingTime: Double = 0, jobID: String = "",
        metadata: [String: String] = [:], taskID: String = ""
    ) {
        self.status = status
        self.outputPath = outputPath
        self.processingTime = processingTime
        self.jobID = jobID
        self.metadata = metadata
        self.taskID = taskID
    }
}

extension Swapline_V1_FaceSwapResponse: CBridged {
    init(c: Swapline__V1__FaceSwapResponse) throws(FieldDecodingError) {
        self.init(
            status: try CField.string(c.status, field: "status", maxBytes: MessageLimits.nameBytes), outputPath: try CField.string(c.output_path, field: "output_path", maxBytes: MessageLimits.urlBytes),
            processingTime: c.processing_time, jobID: try CField.string(c.job_id, field: "job_id", maxBytes: MessageLimits.nameBytes),
            metadata: try CField.map(c.n_metadata, c.metadata, field: "metadata"), taskID: try CField.string(c.task_id, field: "task_id", maxBytes: MessageLimits.idBytes))
    }

    func fill(_ c: inout Swapline__V1__FaceSwapResponse, arena: inout CArena) {
        c.status = arena.cString(status)
        c.output_path = arena.cString(outputPath)
        c.processing_time = processingTime
        c.job_id = arena.cString(jobID)
        (c.n_metadata, c.metadata) = arena.map(metadata)
        c.task_id = arena.cString(taskID)
    }
}

/// Request for one task (`swapline.v1.GetTaskRequest`).
public struct Swapline_V1_GetTaskRequest: Sendable, Equatable {
    public var taskID: String
    public init(taskID: String = "") { self.taskID = taskID }
}

/// Request to cancel a task (`swapline.v1.CancelTaskRequest`).
public struct Swapline_V1_CancelTaskRequest: Sendable, Equatable {
    public var taskID: String
    public init(taskID: String = "") { self.taskID = taskID }
}

/// Request to stream a task's changes (`swapline.v1.WatchTaskRequest`).
public struct Swapline_V1_WatchTaskRequest: Sendable, Equatable {
    public var taskID: String
    public init(taskID: String = "") { self.taskID = taskID }
}

/// The requests whose only field is `string task_id = 1`; they share one bridge.
protocol TaskIDRequest: CBridged where CType: CTaskIDMessage {
    var taskID: String { get }
    init(taskID: String)
}

protocol CTaskIDMessage: CMessage {
    var task_id: UnsafeMutablePointer<CChar>! { get set }
}

extension TaskIDRequest {
    init(c: CType) throws(FieldDecodingError) { self.init(taskID: try CField.string(c.task_id, field: "task_id", maxBytes: MessageLimits.idBytes)) }

    func fill(_ c: inout CType, arena: inout CArena) { c.task_id = arena.cString(taskID) }
}

extension Swapline_V1_GetTaskRequest: TaskIDRequest { typealias CType = Swapline__V1__GetTaskRequest }
extension Swapline_V1_CancelTaskRequest: TaskIDRequest { typealias CType = Swapline__V1__CancelTaskRequest }
extension Swapline_V1_WatchTaskRequest: TaskIDRequest { typealias CType = Swapline__V1__WatchTaskRequest }

/// One observed state of a task (`swapline.v1.TaskEvent`).
public struct Swapline_V1_TaskEvent: Sendable, Equatable {
    public var task: Swapline_V1_Task?
    public var sequence: Int64

    public init(task: Swapline_V1_Task? = nil, sequence: Int64 = 0) {
        self.task = task
        self.sequence = sequence
    }
}

extension Swapline_V1_TaskEvent: CBridged {
    init(c: Swapline__V1__TaskEvent) throws(FieldDecodingError) {
        self.init(task: try CField.message(c.task, field: "task"), sequence: c.sequence)
    }

    func fill(_ c: inout Swapline__V1__TaskEvent, arena: inout CArena) {
        c.task = arena.message(task)
        c.sequence = sequence
    }
}

/// A consumer's long-poll for work (`swapline.v1.FetchTaskRequest`).
public struct Swapline_V1_FetchTaskRequest: Sendable, Equatable {
    public var consumerID: String
    public var workflows: [String]
    /// Milliseconds.
    public var waitMs: Int32

    public init(consumerID: String = "", workflows: [String] = [], waitMs: Int32 = 0) {
        self.consumerID = consumerID
        self.workflows = workflows
        self.waitMs = waitMs
    }
}

extension Swapline_V1_FetchTaskRequest: CBridged {
    init(c: Swapline__V1__FetchTaskRequest) throws(FieldDecodingError) {
        self.init(
            consumerID: try CField.string(c.consumer_id, field: "consumer_id", maxBytes: MessageLimits.idBytes),
            workflows: try CField.strings(
                c.n_workflows, c.workflows, field: "workflows", maxCount: MessageLimits.workflowsPerFetch,
                maxBytes: MessageLimits.nameBytes), waitMs: c.wait_ms)
    }

    func fill(_ c: inout Swapline__V1__FetchTaskRequest, arena: inout CArena) {
        c.consumer_id = arena.cString(consumerID)
        (c.n_workflows, c.workflows) = arena.cStrings(workflows)
        c.wait_ms = waitMs
    }
}

/// A leased task, or none (`swapline.v1.FetchTaskResponse`).
public struct Swapline_V1_FetchTaskResponse: Sendable, Equatable {
    public var task: Swapline_V1_Task?
    public var leaseID: String
    /// Milliseconds since the Unix epoch.
    public var leaseExpiresAtMs: Int64

    public init(task: Swapline_V1_Task? = nil, leaseID: String = "", leaseExpiresAtMs: Int64 = 0) {
        self.task = task
        self.leaseID = leaseID
        self.leaseExpiresAtMs = leaseExpiresAtMs
    }
}

extension Swapline_V1_FetchTaskResponse: CBridged {
    init(c: Swapline__V1__FetchTaskResponse) throws(FieldDecodingError) {
        self.init(
            task: try CField.message(c.task, field: "task"), leaseID: try CField.string(c.lease_id, field: "lease_id", maxBytes: MessageLimits.idBytes),
            leaseExpiresAtMs: c.lease_expires_at_ms)
    }

    func fill(_ c: inout Swapline__V1__FetchTaskResponse, arena: inout CArena) {
        c.task = arena.message(task)
        c.lease_id = arena.cString(leaseID)
        c.lease_expires_at_ms = leaseExpiresAtMs
    }
}

/// A consumer's report on a leased task (`swapline.v1.UpdateStatusRequest`).
public struct Swapline_V1_UpdateStatusRequest: Sendable, Equatable {
    public var taskID: String
    public var leaseID: String
    public var status: Swapline_V1_TaskStatus
    /// 0.0 ... 1.0.
    public var progress: Float
    public var message: String
    public var result: Swapline_V1_TaskResult?
    public var error: String

    public init(
        taskID: String = "", leaseID: String = "", status: Swapline_V1_TaskStatus = .unspecified,
        progress: Float = 0, message: String = "", result: Swapline_V1_TaskResult? = nil, error: String = ""
    ) {
        self.taskID = taskID
        self.leaseID = leaseID
        self.status = status
        self.progress = progress
        self.message = message
        self.result = result
        self.error = error
    }
}

extension Swapline_V1_UpdateStatusRequest: CBridged {
    init(c: Swapline__V1__UpdateStatusRequest) throws(FieldDecodingError) {
        self.init(
            taskID: try CField.string(c.task_id, field: "task_id", maxBytes: MessageLimits.idBytes), leaseID: try CField.string(c.lease_id, field: "lease_id", maxBytes: MessageLimits.idBytes),
            status: CField.enum(c.status), progress: c.progress, message: try CField.string(c.message, field: "message", maxBytes: MessageLimits.textBytes),
            result: try CField.message(c.result, field: "result"), error: try CField.string(c.error, field: "error", maxBytes: MessageLimits.textBytes))
    }

    func fill(_ c: inout Swapline__V1__UpdateStatusRequest, arena: inout CArena) {
        c.task_id = arena.cString(taskID)
        c.lease_id = arena.cString(leaseID)
        c.status = status.c()
        c.progress = progress
        c.message = arena.cString(message)
        c.result = arena.message(result)
        c.error = arena.cString(error)
    }
}
