// Swift values of the listing and statistics messages of proto/swapline/v1/tasks.proto
// (TaskService.ListTasks, GetQueueStats, Task.history). Field meanings, units and defaults are
// documented in the .proto file.
internal import CSwaplineProto

/// One change of a task's state (`swapline.v1.TaskTransition`).
public struct Swapline_V1_TaskTransition: Sendable, Equatable {
    public var status: Swapline_V1_TaskStatus
    /// Milliseconds since the Unix epoch.
    public var atMs: Int64
    public var attempt: Int32
    public var note: String

    public init(status: Swapline_V1_TaskStatus = .unspecified, atMs: Int64 = 0, attempt: Int32 = 0, note: String = "") {
        self.status = status
        self.atMs = atMs
        self.attempt = attempt
        self.note = note
    }
}

extension Swapline_V1_TaskTransition: CBridged {
    init(c: Swapline__V1__TaskTransition) throws(FieldDecodingError) {
        self.init(
            status: CField.enum(c.status), atMs: c.at_ms, attempt: c.attempt,
            note: try CField.string(c.note, field: "note", maxBytes: MessageLimits.textBytes))
    }

    func fill(_ c: inout Swapline__V1__TaskTransition, arena: inout CArena) {
        c.status = status.c()
        c.at_ms = atMs
        c.attempt = attempt
        c.note = arena.cString(note)
    }
}

/// Request for a page of tasks (`swapline.v1.ListTasksRequest`).
public struct Swapline_V1_ListTasksRequest: Sendable, Equatable {
    public var statuses: [Swapline_V1_TaskStatus]
    public var workflow: String
    /// Milliseconds since the Unix epoch; 0: no bound.
    public var createdAfterMs: Int64
    /// Milliseconds since the Unix epoch; 0: no bound.
    public var createdBeforeMs: Int64
    public var idempotencyKey: String
    /// 0: the server's default (50).
    public var pageSize: Int32
    public var pageToken: String

    public init(
        statuses: [Swapline_V1_TaskStatus] = [], workflow: String = "", createdAfterMs: Int64 = 0, createdBeforeMs: Int64 = 0,
        idempotencyKey: String = "", pageSize: Int32 = 0, pageToken: String = ""
    ) {
        self.statuses = statuses
        self.workflow = workflow
        self.createdAfterMs = createdAfterMs
        self.createdBeforeMs = createdBeforeMs
        self.idempotencyKey = idempotencyKey
        self.pageSize = pageSize
        self.pageToken = pageToken
    }
}

extension Swapline_V1_ListTasksRequest: CBridged {
    init(c: Swapline__V1__ListTasksRequest) throws(FieldDecodingError) {
        self.init(
            statuses: try CField.enums(c.n_statuses, c.statuses, field: "statuses", maxCount: MessageLimits.statusesPerList),
            workflow: try CField.string(c.workflow, field: "workflow", maxBytes: MessageLimits.nameBytes),
            createdAfterMs: c.created_after_ms, createdBeforeMs: c.created_before_ms,
            idempotencyKey: try CField.string(c.idempotency_key, field: "idempotency_key", maxBytes: MessageLimits.idBytes),
            pageSize: c.page_size, pageToken: try CField.string(c.page_token, field: "page_token", maxBytes: MessageLimits.pageTokenBytes))
    }

    func fill(_ c: inout Swapline__V1__ListTasksRequest, arena: inout CArena) {
        (c.n_statuses, c.statuses) = arena.enums(statuses)
        c.workflow = arena.cString(workflow)
        c.created_after_ms = createdAfterMs
        c.created_before_ms = createdBeforeMs
        c.idempotency_key = arena.cString(idempotencyKey)
        c.page_size = pageSize
        c.page_token = arena.cString(pageToken)
    }
}

/// A page of tasks (`swapline.v1.ListTasksResponse`).
public struct Swapline_V1_ListTasksResponse: Sendable, Equatable {
    public var tasks: [Swapline_V1_Task]
    /// Empty on the last page.
    public var nextPageToken: String

    public init(tasks: [Swapline_V1_Task] = [], nextPageToken: String = "") {
        self.tasks = tasks
        self.nextPageToken = nextPageToken
    }
}

extension Swapline_V1_ListTasksResponse: CBridged {
    init(c: Swapline__V1__ListTasksResponse) throws(FieldDecodingError) {
        self.init(
            tasks: try CField.messages(c.n_tasks, c.tasks, field: "tasks", maxCount: MessageLimits.tasksPerPage),
            nextPageToken: try CField.string(c.next_page_token, field: "next_page_token", maxBytes: MessageLimits.pageTokenBytes))
    }

    func fill(_ c: inout Swapline__V1__ListTasksResponse, arena: inout CArena) {
        (c.n_tasks, c.tasks) = arena.messages(tasks)
        c.next_page_token = arena.cString(nextPageToken)
    }
}

/// Request for the queue's figures (`swapline.v1.GetQueueStatsRequest`).
public struct Swapline_V1_GetQueueStatsRequest: Sendable, Equatable {
    /// Empty: every workflow.
    public var workflow: String

    public init(workflow: String = "") { self.workflow = workflow }
}

extension Swapline_V1_GetQueueStatsRequest: CBridged {
    init(c: Swapline__V1__GetQueueStatsRequest) throws(FieldDecodingError) {
        self.init(workflow: try CField.string(c.workflow, field: "workflow", maxBytes: MessageLimits.nameBytes))
    }

    func fill(_ c: inout Swapline__V1__GetQueueStatsRequest, arena: inout CArena) { c.workflow = arena.cString(workflow) }
}

/// The queue at one moment (`swapline.v1.QueueStats`).
public struct Swapline_V1_QueueStats: Sendable, Equatable {
    /// Number of tasks of one workflow in one state (`swapline.v1.QueueStats.Count`).
    public struct Count: Sendable, Equatable {
        public var workflow: String
        public var status: Swapline_V1_TaskStatus
        public var count: Int64

        public init(workflow: String = "", status: Swapline_V1_TaskStatus = .unspecified, count: Int64 = 0) {
            self.workflow = workflow
            self.status = status
            self.count = count
        }
    }

    public var counts: [Count]
    /// Milliseconds; 0 when nothing is pending.
    public var oldestPendingAgeMs: Int64
    public var waitingConsumers: Int32
    public var activeLeases: Int64
    public var finishedLastMinute: Int64
    public var failedLastMinute: Int64
    /// failedLastMinute / finishedLastMinute; 0 when nothing finished.
    public var failureShareLastMinute: Double
    /// Milliseconds since the Unix epoch.
    public var generatedAtMs: Int64

    public init(
        counts: [Count] = [], oldestPendingAgeMs: Int64 = 0, waitingConsumers: Int32 = 0, activeLeases: Int64 = 0,
        finishedLastMinute: Int64 = 0, failedLastMinute: Int64 = 0, failureShareLastMinute: Double = 0, generatedAtMs: Int64 = 0
    ) {
        self.counts = counts
        self.oldestPendingAgeMs = oldestPendingAgeMs
        self.waitingConsumers = waitingConsumers
        self.activeLeases = activeLeases
        self.finishedLastMinute = finishedLastMinute
        self.failedLastMinute = failedLastMinute
        self.failureShareLastMinute = failureShareLastMinute
        self.generatedAtMs = generatedAtMs
    }
}

extension Swapline_V1_QueueStats.Count: CBridged {
    init(c: Swapline__V1__QueueStats__Count) throws(FieldDecodingError) {
        self.init(
            workflow: try CField.string(c.workflow, field: "workflow", maxBytes: MessageLimits.nameBytes), status: CField.enum(c.status),
            count: c.count)
    }

    func fill(_ c: inout Swapline__V1__QueueStats__Count, arena: inout CArena) {
        c.workflow = arena.cString(workflow)
        c.status = status.c()
        c.count = count
    }
}

extension Swapline_V1_QueueStats: CBridged {
    init(c: Swapline__V1__QueueStats) throws(FieldDecodingError) {
        self.init(
            counts: try CField.messages(c.n_counts, c.counts, field: "counts", maxCount: MessageLimits.queueStatsCounts),
            oldestPendingAgeMs: c.oldest_pending_age_ms, waitingConsumers: c.waiting_consumers, activeLeases: c.active_leases,
            finishedLastMinute: c.finished_last_minute, failedLastMinute: c.failed_last_minute,
            failureShareLastMinute: c.failure_share_last_minute, generatedAtMs: c.generated_at_ms)
    }

    func fill(_ c: inout Swapline__V1__QueueStats, arena: inout CArena) {
        (c.n_counts, c.counts) = arena.messages(counts)
        c.oldest_pending_age_ms = oldestPendingAgeMs
        c.waiting_consumers = waitingConsumers
        c.active_leases = activeLeases
        c.finished_last_minute = finishedLastMinute
        c.failed_last_minute = failedLastMinute
        c.failure_share_last_minute = failureShareLastMinute
        c.generated_at_ms = generatedAtMs
    }
}
