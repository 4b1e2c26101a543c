import SwaplineCore
import SwaplineMetrics
import Testing

@testable import SwaplineServer

/// The server's metric sets: which task change counts as which event, the queue-depth gauges
/// and the REST route labels.
@Suite struct ServerMetricsTests {
    private let params = FaceSwapParameters(sourceURL: "https://example.com/a.jpg", targetURL: "https://example.com/b.jpg", resolution: "", model: "")

    private func record(_ state: TaskState, version: Int64, attempt: Int32 = 0, createdAtMs: Int64 = 1_000, updatedAtMs: Int64) -> TaskRecord {
        TaskRecord(
            taskID: "t1", workflow: "face_swap", environment: "", targetPort: 0, params: params, state: state, sourceChannel: "",
            createdAtMs: createdAtMs, updatedAtMs: updatedAtMs, attempt: attempt,
            lease: state == .processing ? Lease(id: "l\(attempt)", consumerID: "c", expiresAtMs: updatedAtMs + 30_000) : nil,
            version: version)
    }

    private func scrape(_ registry: MetricsRegistry) async -> String {
        String(decoding: await registry.scrape(), as: UTF8.self)
    }

    @Test func eachCommittedChangeCountsAsTheEventItIs() async {
        let registry = MetricsRegistry()
        let metrics = TaskMetrics(registry: registry)
        metrics.observe(record(.pending, version: 1, updatedAtMs: 1_000))  // created
        metrics.observe(record(.processing, version: 2, attempt: 1, updatedAtMs: 1_500))  // first lease: 0.5 s in queue
        metrics.observe(record(.processing, version: 3, attempt: 1, updatedAtMs: 2_000))  // progress: no event
        metrics.observe(record(.pending, version: 4, attempt: 1, updatedAtMs: 40_000))  // lease expired
        metrics.observe(record(.processing, version: 5, attempt: 2, updatedAtMs: 41_000))  // second lease
        metrics.observe(record(.completed, version: 6, attempt: 2, updatedAtMs: 44_000))  // 3 s of processing

        #expect(metrics.count(.created) == 1)
        #expect(metrics.count(.redelivered) == 1)
        #expect(metrics.count(.completed) == 1)
        #expect(metrics.count(.failed) == 0)
        let text = await scrape(registry)
        #expect(text.contains(#"swapline_tasks_total{event="created"} 1"#))
        #expect(text.contains(#"swapline_tasks_total{event="redelivered"} 1"#))
        #expect(text.contains(#"swapline_tasks_total{event="completed"} 1"#))
        #expect(!text.contains(#"event="failed""#))
        // Only the first lease counts as time in queue; processing runs from the lease that ended it.
        #expect(text.contains("swapline_task_queue_seconds_count 1"))
        #expect(text.contains("swapline_task_queue_seconds_sum 0.5"))
        #expect(text.contains("swapline_task_processing_seconds_count 1"))
        #expect(text.contains("swapline_task_processing_seconds_sum 3.0"))
    }

    @Test func aTaskCancelledWhilePendingHasNoProcessingTime() async {
        let registry = MetricsRegistry()
        let metrics = TaskMetrics(registry: registry)
        metrics.observe(record(.pending, version: 1, updatedAtMs: 1_000))
        metrics.observe(record(.cancelled, version: 2, updatedAtMs: 2_000))
        #expect(metrics.count(.cancelled) == 1)
        #expect(await scrape(registry).contains("swapline_task_processing_seconds_count 0"))
    }

    @Test func queueGaugesGoToZeroWhenAStateEmpties() async {
        let registry = MetricsRegistry()
        let gauges = QueueGauges(registry: registry)
        let pending = TaskStoreStats.Key(workflow: "face_swap", state: .pending)
        let processing = TaskStoreStats.Key(workflow: "face_swap", state: .processing)
        gauges.set(TaskStoreStats(counts: [pending: 4, processing: 1], oldestPendingCreatedAtMs: 1_000), nowMs: 3_500)
        var text = await scrape(registry)
        #expect(text.contains(#"swapline_queue_tasks{workflow="face_swap",state="PENDING"} 4"#))
        #expect(text.contains("swapline_queue_oldest_pending_age_seconds 2.5"))
        gauges.set(TaskStoreStats(counts: [processing: 2]), nowMs: 4_000)
        text = await scrape(registry)
        #expect(text.contains(#"swapline_queue_tasks{workflow="face_swap",state="PENDING"} 0"#))
        #expect(text.contains(#"swapline_queue_tasks{workflow="face_swap",state="PROCESSING"} 2"#))
        #expect(text.contains("swapline_queue_oldest_pending_age_seconds 0.0"))
    }

    @Test func everyRESTRouteHasItsOwnLabel() {
        let labels = RESTRouteName.allCases.map(\.label)
        #expect(Set(labels).count == labels.count)
        #expect(RESTRouteName(.getTask("abc")).label == "get_task")
        #expect(RESTRouteName(nil).label == "unmatched")
    }
}

extension ServerMetricsTests {
    @Test func leasesWhoseEndIsNeverHeardDoNotPileUp() async {
        let registry = MetricsRegistry()
        let metrics = TaskMetrics(registry: registry)
        for index in 0..<(TaskMetrics.maxTrackedLeases + 10) {
            var task = record(.processing, version: 2, attempt: 1, updatedAtMs: 2_000)
            task.taskID = "t\(index)"
            metrics.observe(task)
        }
        #expect(metrics.trackedLeaseCount == TaskMetrics.maxTrackedLeases)
    }
}
