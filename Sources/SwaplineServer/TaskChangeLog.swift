import Logging
import Synchronization
import SwaplineCore
import SwaplineLogging

/// One info line per task state change, fed every committed change by the scheduler
/// (the `TaskScheduler`'s `changeObserver`). Progress reports and lease renewals change a PROCESSING
/// task without changing its state, so they are not logged; a new lease (the next attempt,
/// or a claim after a hand-back) is. With a shared PostgreSQL queue every server hears every
/// change, so each server logs them all.
final class TaskChangeLog: Sendable {
    private let logger: Logger
    /// The lease of each PROCESSING task whose change to PROCESSING was logged; bounded by the
    /// tasks being worked on.
    private let loggedLeases = Mutex<[String: String]>([:])

    init(logger: Logger) {
        self.logger = logger
    }

    func record(_ task: TaskRecord) {
        // A new task (version 1) has no lease to forget: no lock on the create path.
        let changedState = task.version == 1 || loggedLeases.withLock { leases in
            guard let lease = task.lease else {
                leases.removeValue(forKey: task.taskID)
                return true
            }
            return leases.updateValue(lease.id, forKey: task.taskID) != lease.id
        }
        guard changedState else { return }
        var metadata = TaskLogMetadata.metadata(
            taskID: task.taskID, attempt: task.attempt, consumerID: task.lease?.consumerID, leaseID: task.lease?.id)
        metadata["state"] = .string(task.state.rawValue)
        metadata["workflow"] = .string(task.workflow)
        if !task.error.isEmpty { metadata["error"] = .string(task.error) }
        logger.info("task \(task.taskID) is \(task.state.rawValue)", metadata: metadata)
    }
}
