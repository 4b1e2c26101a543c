import ArgumentParser
import SwaplineCore
import SwaplineServer

/// What one client may pile up (docs/security.md, "Quotas"): its pace of task creation, its
/// open tasks, the queue's length and how long a task may wait in it. 0 turns a limit off.
struct QuotaOptions: ParsableArguments {
    @Option(help: "Tasks one client (token, or address without tokens) may create per second with CreateTask and ProcessSync; 0: no limit.")
    var createRate: Double = 100

    @Option(help: "Tasks one client may create at once after keeping quiet (the token bucket's size).")
    var createBurst = 1_000

    @Option(help: "Open (PENDING or PROCESSING) tasks one client token may have; 0: no limit. Servers without tokens have only --max-queue-length.")
    var maxOpenTasksPerClient = 10_000

    @Option(help: "PENDING tasks the queue may hold; creates beyond are refused (retry after 30 s); 0: no limit.")
    var maxQueueLength = 100_000

    @Option(help: "Longest a task may stay PENDING, in ms, before it fails as expired in the queue; 0: forever.")
    var maxPendingAgeMs: Int64 = 86_400_000

    func validate() throws {
        guard createRate.isFinite, createRate >= 0 else { throw ValidationError("--create-rate must be 0 or a positive number of tasks per second") }
        guard createBurst >= 1 else { throw ValidationError("--create-burst must be at least 1") }
        guard maxOpenTasksPerClient >= 0 else { throw ValidationError("--max-open-tasks-per-client must not be negative") }
        guard maxQueueLength >= 0 else { throw ValidationError("--max-queue-length must not be negative") }
        guard maxPendingAgeMs >= 0 else { throw ValidationError("--max-pending-age-ms must not be negative") }
    }

    /// Sets the quotas of `configuration`.
    func apply(to configuration: inout ServerConfiguration) {
        configuration.createRateLimit = createRate > 0 ? CreateRateLimit(perSecond: createRate, burst: createBurst) : nil
        configuration.scheduler.quotas = TaskQuotas(
            maxOpenTasksPerOwner: maxOpenTasksPerClient > 0 ? maxOpenTasksPerClient : nil,
            maxQueueLength: maxQueueLength > 0 ? maxQueueLength : nil,
            maxPendingAgeMs: maxPendingAgeMs > 0 ? maxPendingAgeMs : nil)
    }
}
