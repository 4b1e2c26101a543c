import Prometheus
import SwaplineCore
import SwaplineMetrics
import Synchronization

/// The server's gauges, all read when Prometheus scrapes rather than kept up to date by the
/// request path: `swapline_queue_tasks{workflow,state}` and
/// `swapline_queue_oldest_pending_age_seconds` (from the queue's stats, which every backend
/// keeps as counters), `swapline_open_connections`, `swapline_open_watches` and
/// `swapline_waiting_consumers`.
enum ServerGauges {
    /// What the gauges read; each closure must be cheap and must not block.
    struct Sources: Sendable {
        var queue: any TaskQueue
        var clock: WallClock
        var openConnections: @Sendable () -> Int
        var openWatches: @Sendable () -> Int
        var waitingConsumers: @Sendable () -> Int
    }

    static func register(in registry: MetricsRegistry, reading sources: Sources) {
        let connections = registry.gauge(
            name: "swapline_open_connections", help: "Open client connections (HTTP/2 and HTTP/1.1, cleartext and TLS)")
        let watches = registry.gauge(name: "swapline_open_watches", help: "Open WatchTask calls (gRPC and REST /events)")
        let waiters = registry.gauge(name: "swapline_waiting_consumers", help: "FetchTask calls waiting for a task")
        let queue = QueueGauges(registry: registry)
        registry.onScrape {
            connections.set(Int64(sources.openConnections()))
            watches.set(Int64(sources.openWatches()))
            waiters.set(Int64(sources.waitingConsumers()))
            let nowMs = sources.clock.nowMs()
            if let stats = await queueStats(sources.queue, nowMs: nowMs) { queue.set(stats, nowMs: nowMs) }
        }
    }

    /// Every task's counts; `nil` when the store could not answer (the gauges then keep their
    /// last values).
    private static func queueStats(_ queue: any TaskQueue, nowMs: Int64) async -> TaskStoreStats? {
        await withCheckedContinuation { continuation in
            queue.stats(scope: .everyone, workflow: nil, finishedSinceMs: nowMs) { result in
                continuation.resume(returning: try? result.get())
            }
        }
    }
}

/// `swapline_queue_tasks{workflow,state}` and `swapline_queue_oldest_pending_age_seconds`. A
/// workflow and state that had tasks and has none now reads 0 rather than disappearing, so
/// `rate` and alerts see the drop.
final class QueueGauges: Sendable {
    private let registry: MetricsRegistry
    private let counts = Mutex<[TaskStoreStats.Key: Gauge]>([:])
    private let oldestPendingAge: Gauge

    init(registry: MetricsRegistry) {
        self.registry = registry
        oldestPendingAge = registry.gauge(
            name: "swapline_queue_oldest_pending_age_seconds", help: "How long the oldest PENDING task has waited; 0 when none is pending")
    }

    func set(_ stats: TaskStoreStats, nowMs: Int64) {
        counts.withLock { gauges in
            for (key, count) in stats.counts {
                let gauge =
                    gauges[key]
                    ?? registry.gauge(
                        name: "swapline_queue_tasks", labels: [("workflow", key.workflow), ("state", key.state.rawValue)],
                        help: "Tasks in the store by workflow and state, from the queue's counters at scrape time")
                gauges[key] = gauge
                gauge.set(count)
            }
            for (key, gauge) in gauges where stats.counts[key] == nil { gauge.set(Int64(0)) }
        }
        let waitedMs = stats.oldestPendingCreatedAtMs.map { max(0, nowMs - $0) } ?? 0
        oldestPendingAge.set(Double(waitedMs) / 1000)
    }
}
