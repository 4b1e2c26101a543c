/// Where a task is in its life. COMPLETED, FAILED and CANCELLED are terminal: nothing changes
/// a task afterwards.
public enum TaskState: String, Sendable, Hashable, CaseIterable {
    case pending = "PENDING"
    case processing = "PROCESSING"
    case completed = "COMPLETED"
    case failed = "FAILED"
    case cancelled = "CANCELLED"

    public var isTerminal: Bool {
        switch self {
        case .pending, .processing: return false
        case .completed, .failed, .cancelled: return true
        }
    }
}

/// The face-swap parameters of a task (`params.input_data.wf_json` in the legacy format).
public struct FaceSwapParameters: Sendable, Hashable {
    public var sourceURL: String
    public var targetURL: String
    /// `WxH`, one of the sizes the model supports (see `FaceSwapCatalog`).
    public var resolution: String
    /// A FaceFusion face-swapper model name.
    public var model: String
    /// Further FaceFusion options, passed through to the engine.
    public var options: [String: String]

    public init(sourceURL: String, targetURL: String, resolution: String, model: String, options: [String: String] = [:]) {
        self.sourceURL = sourceURL
        self.targetURL = targetURL
        self.resolution = resolution
        self.model = model
        self.options = options
    }
}

/// What a finished task produced.
public struct TaskOutput: Sendable, Hashable {
    /// URL of the main result (the jpg).
    public var outputURL: String
    /// Format (`jpg`, `gif`, `webp`) to URL.
    public var outputs: [String: String]
    /// Seconds the engine worked.
    public var processingTime: Double
    public var jobID: String
    public var storageProvider: String

    public init(
        outputURL: String = "", outputs: [String: String] = [:], processingTime: Double = 0, jobID: String = "",
        storageProvider: String = ""
    ) {
        self.outputURL = outputURL
        self.outputs = outputs
        self.processingTime = processingTime
        self.jobID = jobID
        self.storageProvider = storageProvider
    }

    /// The provider of each output (format → provider), read from `storageProvider`: one name
    /// for every output, or the worker's `format:provider,…` list when it fell back for some;
    /// empty when `storageProvider` is empty or only lists the providers ("local,s3").
    public var outputProviders: [String: String] {
        guard !storageProvider.isEmpty else { return [:] }
        guard storageProvider.contains(":") else {
            return storageProvider.contains(",") ? [:] : outputs.mapValues { _ in storageProvider }
        }
        var providers: [String: String] = [:]
        for entry in storageProvider.split(separator: ",") {
            let pair = entry.split(separator: ":", maxSplits: 1)
            guard pair.count == 2 else { return [:] }
            providers[String(pair[0])] = String(pair[1])
        }
        return providers
    }
}

/// The right of one consumer to work on a PROCESSING task until `expiresAtMs`.
public struct Lease: Sendable, Hashable {
    public var id: String
    public var consumerID: String
    public var expiresAtMs: Int64

    public init(id: String, consumerID: String, expiresAtMs: Int64) {
        self.id = id
        self.consumerID = consumerID
        self.expiresAtMs = expiresAtMs
    }
}

/// One task, as the scheduler and the store keep it.
///
/// Invariants: `lease` is set exactly when `state == .processing`; `version` grows by one
/// with every committed change and is the `sequence` watchers see.
public struct TaskRecord: Sendable, Hashable {
    public var taskID: String
    public var workflow: String
    public var environment: String
    public var targetPort: Int32
    public var params: FaceSwapParameters
    public var state: TaskState
    public var sourceChannel: String
    public var createdAtMs: Int64
    public var updatedAtMs: Int64
    /// 0...1.
    public var progress: Float
    /// Why the task failed, empty otherwise.
    public var error: String
    public var output: TaskOutput?
    /// Deliveries so far; the first FetchTask that hands the task out makes it 1.
    public var attempt: Int32
    /// Higher is fetched first.
    public var priority: Int32
    /// Unique among the tasks of one `owner` (`TaskQueue.create`).
    public var idempotencyKey: String?
    /// Who created the task: the subject of the client token (`CallerIdentity.subject`), or
    /// empty when the server checked no token. Set at creation, never changed.
    public var owner: String
    public var lease: Lease?
    public var version: Int64
    /// The task's changes of state, oldest first, the newest `TaskHistory.maxEntries`;
    /// appended by `TaskRules` with each change.
    public var history: [TaskTransition]

    public init(
        taskID: String, workflow: String, environment: String, targetPort: Int32, params: FaceSwapParameters,
        state: TaskState, sourceChannel: String, createdAtMs: Int64, updatedAtMs: Int64, progress: Float = 0,
        error: String = "", output: TaskOutput? = nil, attempt: Int32 = 0, priority: Int32 = 0,
        idempotencyKey: String? = nil, owner: String = "", lease: Lease? = nil, version: Int64 = 1,
        history: [TaskTransition] = []
    ) {
        self.taskID = taskID
        self.workflow = workflow
        self.environment = environment
        self.targetPort = targetPort
        self.params = params
        self.state = state
        self.sourceChannel = sourceChannel
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
        self.progress = progress
        self.error = error
        self.output = output
        self.attempt = attempt
        self.priority = priority
        self.idempotencyKey = idempotencyKey
        self.owner = owner
        self.lease = lease
        self.version = version
        self.history = history
    }
}
