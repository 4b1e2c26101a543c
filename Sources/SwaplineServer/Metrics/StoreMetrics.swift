import Prometheus
import SwaplineMetrics

/// `swapline_store_commit_duration_seconds` and `swapline_store_commit_operations`: every
/// transaction of the queue backend (`TaskQueue.setCommitObserver`), i.e. every group commit
/// of the SQLite writer and every PostgreSQL batch transaction (each try). The in-memory
/// backend has none.
final class StoreMetrics: Sendable {
    static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5),
    ]
    static let operationBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    private let duration: DurationHistogram
    private let operations: ValueHistogram

    init(registry: MetricsRegistry) {
        duration = registry.durationHistogram(
            name: "swapline_store_commit_duration_seconds", labels: [], buckets: Self.durationBuckets,
            help: "Duration of the queue store's transactions (SQLite group commits, PostgreSQL batches), failed ones included")
        operations = registry.valueHistogram(
            name: "swapline_store_commit_operations", labels: [], buckets: Self.operationBuckets,
            help: "Operations per queue store transaction (the group commit's batch size)")
    }

    func transactionEnded(operations count: Int, duration elapsed: Duration) {
        duration.record(elapsed)
        operations.record(Double(count))
    }
}
