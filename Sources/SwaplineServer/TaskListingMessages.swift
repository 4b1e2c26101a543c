import RPCCore
import SwaplineCore
import SwaplineMessages

/// ListTasks and GetQueueStats between the wire messages and the backends' queries: the
/// caller's scope, the filters and their checks, page tokens, and the statistics' figures.
enum TaskListingMessages {
    /// ListTasksRequest.page_size 0.
    static let defaultPageSize = 50
    static let maxPageSize = 1_000
    /// The window of QueueStats' `*_last_minute` figures.
    static let lastMinuteMs: Int64 = 60_000

    /// A client token sees its own tasks; an admin token, or anyone on a server without
    /// tokens, every task.
    static func scope(of caller: CallerIdentity?) -> TaskScope {
        guard let caller, caller.role != AccessRole.admin.rawValue else { return .everyone }
        return .owner(caller.subject)
    }

    /// The backend query of a request, or INVALID_ARGUMENT naming what is wrong.
    static func query(_ request: Swapline_V1_ListTasksRequest, caller: CallerIdentity?) -> Result<TaskListQuery, TaskError> {
        var filter = TaskListFilter()
        for (index, status) in request.statuses.enumerated() {
            guard let state = TaskMessages.state(status) else {
                return .failure(TaskError(
                    .invalidArgument, "statuses[\(index)] is \(status.rawValue), not a task status (PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED)"))
            }
            filter.states.insert(state)
        }
        if !request.workflow.isEmpty { filter.workflow = request.workflow }
        if !request.idempotencyKey.isEmpty { filter.idempotencyKey = request.idempotencyKey }
        guard request.createdAfterMs >= 0, request.createdBeforeMs >= 0 else {
            return .failure(TaskError(.invalidArgument, "created_after_ms and created_before_ms must not be negative (0 means no bound)"))
        }
        if request.createdAfterMs > 0 { filter.createdAfterMs = request.createdAfterMs }
        if request.createdBeforeMs > 0 { filter.createdBeforeMs = request.createdBeforeMs }
        if let after = filter.createdAfterMs, let before = filter.createdBeforeMs, after >= before {
            return .failure(TaskError(
                .invalidArgument, "created_after_ms (\(after)) must be less than created_before_ms (\(before)): no task can match"))
        }
        guard (0...Int32(maxPageSize)).contains(request.pageSize) else {
            return .failure(TaskError(.invalidArgument, "page_size must be between 1 and \(maxPageSize) (0 means \(defaultPageSize)), got \(request.pageSize)"))
        }
        var query = TaskListQuery(
            scope: scope(of: caller), filter: filter, limit: request.pageSize == 0 ? defaultPageSize : Int(request.pageSize))
        if !request.pageToken.isEmpty {
            switch TaskPageToken.cursor(request.pageToken, filter: filter) {
            case .success(let cursor): query.after = cursor
            case .failure(let error): return .failure(error)
            }
        }
        return .success(query)
    }

    static func response(_ page: TaskPage, filter: TaskListFilter) -> Swapline_V1_ListTasksResponse {
        Swapline_V1_ListTasksResponse(
            tasks: page.tasks.map(TaskMessages.message),
            nextPageToken: page.next.map { TaskPageToken.make(after: $0, filter: filter) } ?? "")
    }

    /// The figures of `stats`, read at `nowMs`. `waitingConsumers` is `nil` for a caller who
    /// may not see the server's consumers (a client token): 0 then.
    static func queueStats(_ stats: TaskStoreStats, nowMs: Int64, waitingConsumers: Int?) -> Swapline_V1_QueueStats {
        let order = TaskState.allCases
        let counts = stats.counts.sorted { a, b in
            a.key.workflow != b.key.workflow
                ? a.key.workflow < b.key.workflow : order.firstIndex(of: a.key.state)! < order.firstIndex(of: b.key.state)!
        }
        let activeLeases = stats.counts.filter { $0.key.state == .processing }.values.reduce(0, +)
        return Swapline_V1_QueueStats(
            counts: counts.map { .init(workflow: $0.key.workflow, status: TaskMessages.status($0.key.state), count: $0.value) },
            oldestPendingAgeMs: stats.oldestPendingCreatedAtMs.map { max(0, nowMs - $0) } ?? 0,
            waitingConsumers: Int32(clamping: waitingConsumers ?? 0), activeLeases: activeLeases,
            finishedLastMinute: stats.finishedSince, failedLastMinute: stats.failedSince,
            failureShareLastMinute: stats.finishedSince == 0 ? 0 : Double(stats.failedSince) / Double(stats.finishedSince),
            generatedAtMs: nowMs)
    }

    /// Task.history of a GetTask answer.
    static func history(_ record: TaskRecord) -> [Swapline_V1_TaskTransition] {
        record.history.map {
            Swapline_V1_TaskTransition(status: TaskMessages.status($0.state), atMs: $0.atMs, attempt: $0.attempt, note: $0.note)
        }
    }
}
