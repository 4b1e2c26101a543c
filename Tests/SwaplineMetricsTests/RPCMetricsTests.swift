import NIOCore
import RPCCore
import Testing

@testable import SwaplineMetrics

@Suite struct RPCMetricsTests {
    let methods = [
        MethodDescriptor(service: "swapline.v1.TaskService", method: "CreateTask"),
        MethodDescriptor(service: "swapline.v1.ConsumerService", method: "FetchTask"),
    ]

    @Test func countsCallsByMethodAndCodeWithOneSeriesPerPairSeen() async {
        let registry = MetricsRegistry()
        let metrics = RPCMetrics(methods: methods, registry: registry)
        for _ in 0..<3 { metrics.callEnded(methodIndex: 0, code: .ok, startedAt: .now()) }
        metrics.callEnded(methodIndex: 0, code: .invalidArgument, startedAt: .now())
        metrics.callEnded(methodIndex: nil, code: .unimplemented, startedAt: .now())

        let scraped = ExpositionText(await registry.scrape())
        #expect(scraped.value(#"swapline_rpc_requests_total{method="TaskService/CreateTask",code="OK"}"#) == 3)
        #expect(scraped.value(#"swapline_rpc_requests_total{method="TaskService/CreateTask",code="INVALID_ARGUMENT"}"#) == 1)
        #expect(scraped.value(#"swapline_rpc_requests_total{method="unknown",code="UNIMPLEMENTED"}"#) == 1)
        // Pairs that never happened make no series.
        #expect(scraped.samples(of: "swapline_rpc_requests_total").count == 3)
        #expect(scraped.value(#"swapline_rpc_duration_seconds_count{method="TaskService/CreateTask"}"#) == 4)
        #expect(scraped.value(#"swapline_rpc_duration_seconds_count{method="ConsumerService/FetchTask"}"#) == 0)
        #expect(scraped.text.contains("# TYPE swapline_rpc_requests_total counter"))
        #expect(scraped.text.contains("# TYPE swapline_rpc_duration_seconds histogram"))
    }

    @Test func laterScrapesAddOnlyWhatHappenedSince() async {
        let registry = MetricsRegistry()
        let metrics = RPCMetrics(methods: methods, registry: registry)
        metrics.callEnded(methodIndex: 1, code: .ok, startedAt: .now())
        _ = await registry.scrape()
        metrics.callEnded(methodIndex: 1, code: .ok, startedAt: .now())
        let scraped = ExpositionText(await registry.scrape())
        #expect(scraped.value(#"swapline_rpc_requests_total{method="ConsumerService/FetchTask",code="OK"}"#) == 2)
    }

    @Test func aCodeOutsideGRPCsListCountsAsUnknown() {
        let metrics = RPCMetrics(methods: methods, registry: MetricsRegistry())
        metrics.callEnded(methodIndex: 0, code: GRPCStatus.Code(rawValue: 99), startedAt: .now())
        #expect(metrics.count(methodIndex: 0, code: .unknown) == 1)
    }

    @Test func theDurationLandsInTheBucketOfItsLength() async {
        let registry = MetricsRegistry()
        let metrics = RPCMetrics(methods: methods, registry: registry)
        metrics.callEnded(methodIndex: 0, code: .ok, startedAt: .now() - .milliseconds(30))
        let scraped = ExpositionText(await registry.scrape())
        #expect(scraped.value(#"swapline_rpc_duration_seconds_bucket{method="TaskService/CreateTask",le="0.025"}"#) == 0)
        #expect(scraped.value(#"swapline_rpc_duration_seconds_bucket{method="TaskService/CreateTask",le="0.05"}"#) == 1)
    }
}
