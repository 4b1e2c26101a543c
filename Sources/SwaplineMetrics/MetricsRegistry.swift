import CoreMetrics
public import Prometheus
import Synchronization

/// The Prometheus registry of one server or worker, and what `/metrics` answers from it.
///
/// Swapline's own metrics are registered here directly (with their help texts and concrete,
/// final handle types); `bootstrapSwiftMetrics` makes the same registry the swift-metrics
/// backend of the process, so metrics of libraries written against swift-metrics land in the
/// same output. Gauges that describe the moment (queue depth, open connections) are set by
/// collectors that run before every scrape rather than kept up to date on the request path.
public final class MetricsRegistry: Sendable {
    private let prometheus: PrometheusCollectorRegistry
    private let collectors = Mutex<[@Sendable () async -> Void]>([])

    public init() {
        prometheus = PrometheusCollectorRegistry()
    }

    /// swift-metrics' factory over this registry.
    public var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: prometheus) }

    /// Makes this registry the swift-metrics backend of the process. swift-metrics allows this
    /// once per process, so only the CLI calls it, never a library or a test.
    public func bootstrapSwiftMetrics() {
        MetricsSystem.bootstrap(factory)
    }

    /// Runs `collect` before every scrape: where scrape-time gauges are read.
    public func onScrape(_ collect: @escaping @Sendable () async -> Void) {
        collectors.withLock { $0.append(collect) }
    }

    /// Every metric in the Prometheus text format (version 0.0.4), once the collectors ran.
    public func scrape() async -> [UInt8] {
        for collect in collectors.withLock({ $0 }) { await collect() }
        return prometheus.emitToBuffer()
    }

    // The metrics of each name and label set, created on first use and the same one after.
    // `name` is the whole Prometheus name (`swapline_rpc_requests_total`); `help` its HELP line.

    public func counter(name: String, labels: [(String, String)] = [], help: String) -> Prometheus.Counter {
        prometheus.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
    }

    public func gauge(name: String, labels: [(String, String)] = [], help: String) -> Prometheus.Gauge {
        prometheus.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
    }

    public func durationHistogram(name: String, labels: [(String, String)] = [], buckets: [Duration], help: String) -> DurationHistogram {
        prometheus.makeDurationHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets)
    }

    public func valueHistogram(name: String, labels: [(String, String)] = [], buckets: [Double], help: String) -> ValueHistogram {
        prometheus.makeValueHistogram(descriptor: Self.descriptor(name, help), labels: labels, buckets: buckets)
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The content type of `scrape`'s output.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}
