import NIOEmbedded
import RPCCore
import SwaplineTestKit
import Testing

@testable import SwaplineMetrics

/// The metrics listener's refusals. Its answer to `GET /metrics` (scraped off the event loop)
/// is tested over real HTTP/1.1 and h2c in tests/interop/test_metrics.py.
@Suite struct MetricsEndpointTests {
    private func request(_ method: String, _ path: String) -> RecordingStreamWriter {
        let writer = RecordingStreamWriter(loop: EmbeddedEventLoop())
        let handler = MetricsEndpoint(registry: MetricsRegistry()).makeHandler(writer: writer)
        handler.receiveHead([HeaderField(":method", method), HeaderField(":path", path)], endStream: true)
        return writer
    }

    @Test func otherPathsAreNotFound() {
        guard case .head(404, _, false) = request("GET", "/health").events.first else {
            Issue.record("no 404")
            return
        }
    }

    @Test func otherMethodsAreNotAllowed() {
        guard case .head(405, let headers, false) = request("POST", "/metrics").events.first else {
            Issue.record("no 405")
            return
        }
        #expect(headers.contains(HeaderField("allow", "GET, HEAD")))
    }

    @Test func headOfAnotherPathGetsNoBody() {
        let writer = request("HEAD", "/other")
        guard case .head(404, _, true) = writer.events.first else {
            Issue.record("no bodiless 404: \(writer.events)")
            return
        }
        #expect(writer.events.count == 1)
    }
}
