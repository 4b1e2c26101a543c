import NIOCore
import RPCCore
import SwaplineCore
import SwaplineMessages

/// swapline.v1.ConsumerService: what workers call.
struct ConsumerService {
    static let name = Swapline_V1_ConsumerService.name

    let scheduler: TaskScheduler
    var limits = LongPollLimits()

    func register(in router: inout RPCRouter) {
        let scheduler = self.scheduler
        let fetches = LongPollGate(
            what: "FetchTask calls", perConnection: limits.maxParkedFetchesPerConnection, total: limits.maxParkedFetches)
        router.register(Swapline_V1_ConsumerService.fetchTask) { request, call in
            Self.fetch(request, scheduler: scheduler, gate: fetches, call: call)
        }
        router.register(Swapline_V1_ConsumerService.updateStatus) { request, call in
            guard !request.taskID.isEmpty else {
                return call.finish(GRPCStatus(.invalidArgument, "task_id is required"))
            }
            let update = StatusUpdate(
                taskID: request.taskID, leaseID: request.leaseID, state: TaskMessages.state(request.status),
                progress: request.progress, output: request.result.map(TaskMessages.output), error: request.error)
            scheduler.updateStatus(update) { result in
                switch result {
                case .success(let record): call.reply(TaskMessages.message(record))
                case .failure(let error): call.fail(error)
                }
            }
        }
    }

    /// Long-polls for a task, if `gate` admits another open fetch. A lease whose response
    /// cannot be written (the client left) is handed back at once, so no task is lost between
    /// the scheduler and a consumer.
    private static func fetch(
        _ request: Swapline_V1_FetchTaskRequest, scheduler: TaskScheduler, gate: LongPollGate, call: ServerCall
    ) {
        guard request.waitMs >= 0 else {
            return call.finish(GRPCStatus(.invalidArgument, "wait_ms must not be negative, got \(request.waitMs)"))
        }
        let permit: LongPollPermit
        switch gate.admit(call) {
        case .success(let admitted): permit = admitted
        case .failure(let refusal): return call.finish(refusal)
        }
        let waitMs = min(Int64(request.waitMs), scheduler.configuration.maxFetchWaitMs)
        let token = scheduler.fetchTask(consumerID: request.consumerID, workflows: request.workflows, waitMs: waitMs) { result in
            permit.release()
            switch result {
            case .success(let grant?):
                let response = Swapline_V1_FetchTaskResponse(
                    task: TaskMessages.message(grant.task), leaseID: grant.lease.id, leaseExpiresAtMs: grant.lease.expiresAtMs)
                call.reply(response) { delivered in
                    if !delivered { scheduler.returnUndelivered(grant) }
                }
            case .success(nil):
                call.reply(Swapline_V1_FetchTaskResponse())
            case .failure(let error):
                call.fail(error)
            }
        }
        guard let token else { return }
        let timer = call.eventLoop.scheduleTask(in: .milliseconds(waitMs)) {
            if scheduler.cancelWait(token) {
                permit.release()
                call.reply(Swapline_V1_FetchTaskResponse())
            }
        }
        call.onCancel { _ in
            timer.cancel()
            _ = scheduler.cancelWait(token)
        }
    }
}
