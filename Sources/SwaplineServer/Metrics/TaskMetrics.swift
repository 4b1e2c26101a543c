import Prometheus
import SwaplineCore
import SwaplineMetrics
import Synchronization

/// What happens to tasks, counted from the scheduler's change handler, the one place every
/// committed change passes (`TaskScheduler`'s change observer):
///
/// - `swapline_tasks_total{event}`: `created` (a new task, version 1), `completed`, `failed`,
///   `cancelled` (terminal states), `redelivered` (back to PENDING after a delivery: its lease
///   expired, or its consumer gave it back or never received it);
/// - `swapline_task_queue_seconds`: from creation to its first lease;
/// - `swapline_task_processing_seconds`: from a lease to the terminal state that ended it,
///   for leases this process saw begin.
///
/// Each server counts the changes its change handler hears. With the in-memory and SQLite
/// stores those are exactly its own. On a shared PostgreSQL store every server hears every
/// change (docs/operations.md#metrics: aggregate with `max`, not `sum`).
final class TaskMetrics: Sendable {
    enum Event: Int, CaseIterable {
        case created, completed, failed, cancelled, redelivered

        var label: String {
            switch self {
            case .created: return "created"
            case .completed: return "completed"
            case .failed: return "failed"
            case .cancelled: return "cancelled"
            case .redelivered: return "redelivered"
            }
        }
    }

    static let durationBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600), .seconds(1800), .seconds(3600),
    ]

    private struct LeaseStart {
        var attempt: Int32
        var atMs: Int64
    }

    private let events: CounterTable
    private let queueTime: DurationHistogram
    private let processingTime: DurationHistogram
    /// The lease of each PROCESSING task this process saw begin, until the task leaves
    /// PROCESSING: as many entries as tasks being processed, and never more than
    /// `maxTrackedLeases` (a change this server never hears, such as a PostgreSQL notification
    /// lost while its listener reconnected, would otherwise leave its entry forever).
    private let leaseStarts = Mutex<[String: LeaseStart]>([:])
    static let maxTrackedLeases = 100_000

    init(registry: MetricsRegistry) {
        events = CounterTable(
            registry: registry, name: "swapline_tasks_total",
            help: "Task changes by event: created, completed, failed, cancelled, redelivered (back to PENDING after a delivery)",
            labelSets: Event.allCases.map { [("event", $0.label)] })
        queueTime = registry.durationHistogram(
            name: "swapline_task_queue_seconds", labels: [], buckets: Self.durationBuckets,
            help: "Time from a task's creation to its first lease")
        processingTime = registry.durationHistogram(
            name: "swapline_task_processing_seconds", labels: [], buckets: Self.durationBuckets,
            help: "Time from a task's lease to the terminal state that ended it")
    }

    func observe(_ task: TaskRecord) {
        switch task.state {
        case .pending:
            guard task.version > 1 else { return events.increment(Event.created.rawValue) }
            events.increment(Event.redelivered.rawValue)
            _ = leaseStarts.withLock { $0.removeValue(forKey: task.taskID) }
        case .processing:
            let isNewLease = leaseStarts.withLock { starts in
                guard starts[task.taskID]?.attempt != task.attempt else { return false }
                // Full: one arbitrary lease goes unmeasured rather than memory growing.
                if starts.count >= Self.maxTrackedLeases { starts.remove(at: starts.startIndex) }
                starts[task.taskID] = LeaseStart(attempt: task.attempt, atMs: task.updatedAtMs)
                return true
            }
            if isNewLease, task.attempt == 1 { queueTime.record(.milliseconds(max(0, task.updatedAtMs - task.createdAtMs))) }
        case .completed: ended(task, .completed)
        case .failed: ended(task, .failed)
        case .cancelled: ended(task, .cancelled)
        }
    }

    private func ended(_ task: TaskRecord, _ event: Event) {
        events.increment(event.rawValue)
        if let start = leaseStarts.withLock({ $0.removeValue(forKey: task.taskID) }) {
            processingTime.record(.milliseconds(max(0, task.updatedAtMs - start.atMs)))
        }
    }

    /// Leases whose start is kept (tests).
    var trackedLeaseCount: Int { leaseStarts.withLock { $0.count } }

    /// Count of `event` so far (tests).
    func count(_ event: Event) -> Int { events.count(event.rawValue) }
}
