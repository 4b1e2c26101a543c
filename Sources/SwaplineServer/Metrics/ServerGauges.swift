import Prometheus
import SwaplineCore
import SwaplineMetrics
import Synchronization

/// How many tasks of one workflow are in one state, as a queue backend's stats report them.
public struct QueueDepth: Sendable, Hashable {
    public var workflow: String
    public var state: TaskState
    public var count: Int

    public init(workflow: String, state: TaskState, count: Int) {
        self.workflow = workflow
        self.state = state
        self.count = count
    }
}

/// Reads the queue's task counts by workflow and state at scrape time; `nil` when the store
/// could not say (the gauges then keep their last values).
public typealias QueueDepthProvider = @Sendable (any TaskQueue) async -> [QueueDepth]?

/// The server's gauges, all read when Prometheus scrapes rather than kept up to date by the
/// request path: `swapline_queue_tasks{workflow,state}`, `swapline_open_connections`,
/// `swapline_open_watches` and `swapline_waiting_consumers`.
enum ServerGauges {
    /// What the gauges read; each closure must be cheap and must not block.
    struct Sources: Sendable {
        var queue: any TaskQueue
        var queueDepth: QueueDepthProvider?
        var openConnections: @Sendable () -> Int
        var openWatches: @Sendable () -> Int
        var waitingConsumers: @Sendable () -> Int
    }

    static func register(in registry: MetricsRegistry, reading sources: Sources) {
        let connections = registry.gauge(
            name: "swapline_open_connections", help: "Open client connections (HTTP/2 and HTTP/1.1, cleartext and TLS)")
        let watches = registry.gauge(name: "swapline_open_watches", help: "Open WatchTask calls (gRPC and REST /events)")
        let waiters = registry.gauge(name: "swapline_waiting_consumers", help: "FetchTask calls waiting for a task")
        registry.onScrape {
            connections.set(Int64(sources.openConnections()))
            watches.set(Int64(sources.openWatches()))
            waiters.set(Int64(sources.waitingConsumers()))
        }
        guard let provider = sources.queueDepth else { return }
        let depth = QueueDepthGauges(registry: registry)
        registry.onScrape {
            if let counts = await provider(sources.queue) { depth.set(counts) }
        }
    }
}

/// `swapline_queue_tasks{workflow,state}`. A workflow and state that had tasks and has none
/// now reads 0 rather than disappearing, so `rate` and alerts see the drop.
final class QueueDepthGauges: Sendable {
    private let registry: MetricsRegistry
    private let gauges = Mutex<[QueueDepthKey: Gauge]>([:])

    private struct QueueDepthKey: Hashable {
        var workflow: String
        var state: TaskState
    }

    init(registry: MetricsRegistry) {
        self.registry = registry
    }

    func set(_ counts: [QueueDepth]) {
        gauges.withLock { gauges in
            var seen = Set<QueueDepthKey>()
            for entry in counts {
                let key = QueueDepthKey(workflow: entry.workflow, state: entry.state)
                seen.insert(key)
                let gauge =
                    gauges[key]
                    ?? registry.gauge(
                        name: "swapline_queue_tasks", labels: [("workflow", entry.workflow), ("state", entry.state.rawValue)],
                        help: "Tasks in the queue by workflow and state, read from the store at scrape time")
                gauges[key] = gauge
                gauge.set(Int64(entry.count))
            }
            for (key, gauge) in gauges where !seen.contains(key) { gauge.set(Int64(0)) }
        }
    }
}
