import NIOCore
import RPCCore
import SwaplineCore
import SwaplineMessages

/// swapline.v1.TaskService: what clients call.
struct TaskService {
    static let name = Swapline_V1_TaskService.name
    /// How long ProcessSync waits when the client set no deadline (the original service's
    /// FaceFusion timeout).
    static let defaultProcessSyncWait: TimeAmount = .seconds(120)
    /// ProcessSync tasks go before everything queued by CreateTask.
    static let processSyncPriority: Int32 = 1_000_000

    let scheduler: TaskScheduler
    var limits = LongPollLimits()
    /// Per-client pace of CreateTask and ProcessSync; `nil` for none.
    var createLimiter: CreateRateLimiter?

    func register(in router: inout RPCRouter) {
        let scheduler = self.scheduler
        let createLimiter = self.createLimiter
        let watches = LongPollGate(
            what: "WatchTask streams", perConnection: limits.maxWatchesPerConnection, total: limits.maxWatches)
        router.register(Swapline_V1_TaskService.createTask) { request, call in
            if let refusal = Self.rateRefusal(createLimiter, call) { return call.fail(refusal) }
            let command = CreateTaskCommand(
                workflow: request.workflow, params: TaskMessages.parameters(request.params),
                idempotencyKey: request.idempotencyKey, priority: request.priority, owner: call.caller?.subject ?? "")
            scheduler.createTask(command) { result in
                Self.answer(call, result)
            }
        }
        router.register(Swapline_V1_TaskService.getTask) { request, call in
            guard let id = Self.requireTaskID(request.taskID, call) else { return }
            scheduler.task(id: id) { result in
                switch Self.visible(result, to: call.caller) {
                case .success(let record):
                    var task = TaskMessages.message(record)
                    task.history = TaskListingMessages.history(record)
                    call.reply(task)
                case .failure(let error): call.fail(error)
                }
            }
        }
        router.register(Swapline_V1_TaskService.listTasks) { request, call in
            switch TaskListingMessages.query(request, caller: call.caller) {
            case .failure(let error): call.fail(error)
            case .success(let query):
                scheduler.queue.list(query) { result in
                    switch result {
                    case .success(let page): call.reply(TaskListingMessages.response(page, filter: query.filter))
                    case .failure(let error): call.fail(error)
                    }
                }
            }
        }
        router.register(Swapline_V1_TaskService.getQueueStats) { request, call in
            let scope = TaskListingMessages.scope(of: call.caller)
            let now = WallClock.system.nowMs()
            let workflow = request.workflow.isEmpty ? nil : request.workflow
            scheduler.queue.stats(scope: scope, workflow: workflow, finishedSinceMs: now - TaskListingMessages.lastMinuteMs) { result in
                switch result {
                case .success(let stats):
                    let waiting = scope == .everyone ? scheduler.waitingConsumers : nil
                    call.reply(TaskListingMessages.queueStats(stats, nowMs: now, waitingConsumers: waiting))
                case .failure(let error): call.fail(error)
                }
            }
        }
        router.register(Swapline_V1_TaskService.cancelTask) { request, call in
            guard let id = Self.requireTaskID(request.taskID, call) else { return }
            // The owner never changes, so checking it first leaves no window.
            scheduler.task(id: id) { found in
                switch Self.visible(found, to: call.caller) {
                case .failure(let error): call.fail(error)
                case .success: scheduler.cancelTask(id: id) { result in Self.answer(call, result) }
                }
            }
        }
        router.register(Swapline_V1_TaskService.watchTask) { request, call in
            guard let id = Self.requireTaskID(request.taskID, call) else { return }
            Self.watch(taskID: id, scheduler: scheduler, gate: watches, call: call)
        }
        router.register(Swapline_V1_TaskService.processSync) { request, call in
            if let refusal = Self.rateRefusal(createLimiter, call) { return call.fail(refusal) }
            Self.processSync(request, scheduler: scheduler, call: call)
        }
    }

    /// Who a create counts against: the token's subject, or without tokens the peer's address.
    private static func rateLimitedClient(_ call: ServerCall) -> String {
        if let caller = call.caller { return "token " + caller.subject }
        return "address " + (call.context.peerAddress ?? "unknown")
    }

    private static func rateRefusal(_ limiter: CreateRateLimiter?, _ call: ServerCall) -> TaskError? {
        guard let limiter else { return nil }
        let client = rateLimitedClient(call)
        guard let seconds = limiter.acquire(for: client) else { return nil }
        return TaskError(
            .resourceExhausted, "\(client) creates tasks faster than this server allows (\(limiter.limit)); retry after \(seconds) s",
            retryAfterSeconds: seconds)
    }

    /// Tenancy: a client token sees only the tasks it created, an admin token every task, and
    /// without access control everyone sees everything. Anyone else's task is answered exactly
    /// like a task that does not exist, so ids cannot be probed.
    static func isVisible(_ record: TaskRecord, to caller: CallerIdentity?) -> Bool {
        guard let caller else { return true }
        return caller.role == AccessRole.admin.rawValue || record.owner == caller.subject
    }

    private static func visible(_ result: Result<TaskRecord, TaskError>, to caller: CallerIdentity?) -> Result<TaskRecord, TaskError> {
        guard case .success(let record) = result, !isVisible(record, to: caller) else { return result }
        return .failure(TaskError.noSuchTask(record.taskID))
    }

    private static func answer(_ call: ServerCall, _ result: Result<TaskRecord, TaskError>) {
        switch result {
        case .success(let record): call.reply(TaskMessages.message(record))
        case .failure(let error): call.fail(error)
        }
    }

    private static func requireTaskID(_ id: String, _ call: ServerCall) -> String? {
        if id.isEmpty {
            call.finish(GRPCStatus(.invalidArgument, "task_id is required"))
            return nil
        }
        return id
    }

    /// Streams the task's changes, if `gate` admits another open watch.
    private static func watch(taskID: String, scheduler: TaskScheduler, gate: LongPollGate, call: ServerCall) {
        let permit: LongPollPermit
        switch gate.admit(call) {
        case .success(let admitted): permit = admitted
        case .failure(let refusal): return call.finish(refusal)
        }
        let token = TokenBox()
        let pump = TaskEventPump(call: call) {
            permit.release()
            if let value = token.value { scheduler.unwatch(taskID: taskID, token: value) }
        }
        let caller = call.caller
        token.value = scheduler.watch(taskID: taskID, onChange: { record in
            if isVisible(record, to: caller) { pump.offer(record) }
        }) { current in
            switch visible(current, to: caller) {
            case .failure(let error):
                pump.cancel()
                call.fail(error)
            case .success(let task): pump.offer(task)
            }
        }
        // The pump may have finished before the token existed: unwatch now (twice is harmless).
        if pump.isFinished, let value = token.value { scheduler.unwatch(taskID: taskID, token: value) }
        call.onCancel { _ in pump.cancel() }
    }

    /// Creates a high-priority task and answers when it reaches a terminal state. At the
    /// deadline the call ends `DEADLINE_EXCEEDED`, naming the task, which keeps running.
    private static func processSync(_ request: Swapline_V1_ProcessSyncRequest, scheduler: TaskScheduler, call: ServerCall) {
        let command = CreateTaskCommand(
            params: TaskMessages.parameters(request.params), priority: processSyncPriority, owner: call.caller?.subject ?? "")
        scheduler.createTask(command) { result in
            let created: TaskRecord
            switch result {
            case .success(let record): created = record
            case .failure(let error): return call.fail(error)
            }
            let timeout = GRPCStatus(
                .deadlineExceeded,
                "task \(created.taskID) did not finish before the deadline; it stays queued: follow it with GetTask or WatchTask")
            call.setDeadlineStatus(timeout)
            let token = TokenBox()
            let finishOnce = OnceFlag()
            let finish: @Sendable (TaskRecord?) -> Void = { record in
                guard finishOnce.claim() else { return }
                if let value = token.value { scheduler.unwatch(taskID: created.taskID, token: value) }
                if let record {
                    call.reply(TaskMessages.faceSwapResponse(record))
                } else {
                    call.finish(timeout)
                }
            }
            token.value = scheduler.watch(taskID: created.taskID) { record in
                if record.state.isTerminal { finish(record) }
            } current: { current in
                switch current {
                case .success(let task): if task.state.isTerminal { finish(task) }
                case .failure(let error):
                    // Deleted meanwhile (only by retention, after it finished long ago).
                    guard finishOnce.claim() else { return }
                    call.fail(error)
                }
            }
            if finishOnce.isClaimed, let value = token.value { scheduler.unwatch(taskID: created.taskID, token: value) }
            call.onCancel { _ in finish(nil) }
            if call.deadline == nil {
                call.eventLoop.scheduleTask(in: defaultProcessSyncWait) { finish(nil) }
            }
        }
    }
}
