import Foundation
import SwaplineMetrics
import Testing

@testable import SwaplineWorker

/// The worker's metric names and labels: each storage backend a file is offered to, engine
/// health read at scrape time, tasks by outcome.
@Suite struct WorkerMetricsTests {
    private func scrape(_ metrics: WorkerMetrics) async -> String {
        String(decoding: await metrics.registry.scrape(), as: UTF8.self)
    }

    @Test func aFallbackCountsTheFailedBackendAndTheOneThatTookTheFile() async throws {
        let directory = "/tmp/swapline-storage-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = LocalResultStorageTests.file([1, 2, 3, 4])
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        let metrics = WorkerMetrics()
        let chain = ResultStorageChain(
            [LocalResultStorageTests.FailingStorage(providerName: "s3"), LocalResultStorage(directory: directory, publicBaseURL: "http://h")],
            metrics: metrics)
        _ = try await chain.store(file, taskID: "t")
        let text = await scrape(metrics)
        #expect(text.contains(#"swapline_worker_uploads_total{provider="s3",outcome="error"} 1"#))
        #expect(text.contains(#"swapline_worker_uploads_total{provider="local",outcome="ok"} 1"#))
        #expect(text.contains(#"swapline_worker_upload_bytes_total{provider="local"} 4"#))
        #expect(!text.contains(#"swapline_worker_upload_bytes_total{provider="s3"}"#))
        #expect(text.contains(#"swapline_worker_upload_duration_seconds_count{provider="s3"} 1"#))
    }

    @Test func engineHealthIsReadAtScrapeTime() async {
        let pool = EnginePool(urls: ["http://a", "http://b/"]) { $0 == "http://a" ? nil : "down" }
        let metrics = WorkerMetrics()
        metrics.watch(pool)
        var text = await scrape(metrics)
        #expect(text.contains(#"swapline_worker_engine_healthy{engine="http://a"} 0"#), "not checked yet")
        await pool.refreshHealth()
        text = await scrape(metrics)
        #expect(text.contains(#"swapline_worker_engine_healthy{engine="http://a"} 1"#))
        #expect(text.contains(#"swapline_worker_engine_healthy{engine="http://b"} 0"#))
    }

    @Test func tasksAndEngineCallsCountByOutcome() async {
        let metrics = WorkerMetrics()
        metrics.taskEnded(.handedBack)
        metrics.taskEnded(.handedBack)
        metrics.engineCallEnded(engine: "http://a", succeeded: false, after: .seconds(2))
        let text = await scrape(metrics)
        #expect(text.contains(#"swapline_worker_tasks_total{outcome="handed_back"} 2"#))
        #expect(text.contains(#"swapline_worker_engine_calls_total{engine="http://a",outcome="error"} 1"#))
        #expect(text.contains(#"swapline_worker_engine_call_duration_seconds_bucket{engine="http://a",le="2.5"} 1"#))
    }
}
