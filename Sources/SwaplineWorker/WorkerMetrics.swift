import Prometheus
public import SwaplineMetrics

/// A worker's metrics, served on its `--metrics-port`:
///
/// - `swapline_worker_tasks_total{outcome}`: tasks it worked on, by how they ended
///   (`completed`, `failed`, `handed_back`, `aborted`, `report_failed`);
/// - `swapline_worker_engine_healthy{engine}`: 1 while the engine passes its health checks;
/// - `swapline_worker_engine_calls_total{engine,outcome}` and
///   `swapline_worker_engine_call_duration_seconds{engine}`: FaceFusion `/process` calls (each try);
/// - `swapline_worker_uploads_total{provider,outcome}`, `swapline_worker_upload_bytes_total{provider}`
///   and `swapline_worker_upload_duration_seconds{provider}`: outputs stored, per storage backend tried.
///
/// A worker records a handful of values per task, seconds apart, so it looks its labelled
/// metrics up in the registry each time instead of keeping handles.
public final class WorkerMetrics: Sendable {
    public enum TaskOutcome: String, Sendable {
        case completed, failed
        /// Given back to the queue (draining, or no processor for its workflow); also when the
        /// hand-back failed and the lease is left to expire.
        case handedBack = "handed_back"
        /// The server said the task was cancelled or the lease is gone.
        case aborted
        /// The result could not be reported; the lease will expire.
        case reportFailed = "report_failed"
    }

    static let engineCallBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        .seconds(20), .seconds(30), .seconds(60), .seconds(120), .seconds(300),
    ]
    static let uploadBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    public let registry: MetricsRegistry

    public init(registry: MetricsRegistry = MetricsRegistry()) {
        self.registry = registry
    }

    /// Reads the health of `engines` at every scrape.
    public func watch(_ engines: EnginePool) {
        let gauges = engines.urls.map { url in
            (url, registry.gauge(
                name: "swapline_worker_engine_healthy", labels: [("engine", url)],
                help: "1 while the engine passes its health checks, 0 while it does not (or was not checked yet)"))
        }
        registry.onScrape {
            let healthy = engines.healthyURLs
            for (url, gauge) in gauges { gauge.set(Int64(healthy.contains(url) ? 1 : 0)) }
        }
    }

    func taskEnded(_ outcome: TaskOutcome) {
        registry.counter(
            name: "swapline_worker_tasks_total", labels: [("outcome", outcome.rawValue)], help: "Tasks this worker worked on, by how they ended"
        ).increment()
    }

    func engineCallEnded(engine: String, succeeded: Bool, after duration: Duration) {
        registry.counter(
            name: "swapline_worker_engine_calls_total", labels: [("engine", engine), ("outcome", succeeded ? "ok" : "error")],
            help: "FaceFusion /process calls (each try), by engine and outcome"
        ).increment()
        registry.durationHistogram(
            name: "swapline_worker_engine_call_duration_seconds", labels: [("engine", engine)], buckets: Self.engineCallBuckets,
            help: "Duration of FaceFusion /process calls (each try), by engine"
        ).record(duration)
    }

    func uploadEnded(provider: String, bytes: Int64, succeeded: Bool, after duration: Duration) {
        registry.counter(
            name: "swapline_worker_uploads_total", labels: [("provider", provider), ("outcome", succeeded ? "ok" : "error")],
            help: "Output files offered to a storage backend, by backend and outcome"
        ).increment()
        if succeeded {
            registry.counter(
                name: "swapline_worker_upload_bytes_total", labels: [("provider", provider)],
                help: "Bytes of the output files a storage backend took"
            ).increment(by: bytes)
        }
        registry.durationHistogram(
            name: "swapline_worker_upload_duration_seconds", labels: [("provider", provider)], buckets: Self.uploadBuckets,
            help: "Duration of storing one output file, by backend (failed tries included)"
        ).record(duration)
    }
}
