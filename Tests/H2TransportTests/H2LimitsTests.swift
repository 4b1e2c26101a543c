import NIOCore
import NIOEmbedded
import RPCCore
import Testing
@testable import H2Transport

/// The timeouts and bounds of `H2Configuration` that nghttp2 leaves to the connection.
@Suite struct H2LimitsTests {
    private func router() -> RPCRouter {
        var router = RPCRouter()
        router.register(service: "t.S", method: "Echo", handler: .singleRequest { message, call in call.respond(message) })
        router.register(service: "t.S", method: "Hang", handler: .singleRequest { _, _ in })
        // Three messages of 900 bytes at once, then ends.
        router.register(service: "t.S", method: "Burst", handler: .singleRequest { _, call in
            for _ in 0..<3 { call.send(ByteBuffer(repeating: 1, count: 900)) }
            call.finish(.ok)
        })
        return router
    }

    private func limits(_ change: (inout H2Configuration) -> Void) -> H2Configuration {
        var configuration = H2Configuration()
        change(&configuration)
        return configuration
    }

    private func advance(_ harness: H2Harness, by amount: TimeAmount) {
        (harness.channel.eventLoop as! EmbeddedEventLoop).advanceTime(by: amount)
    }

    /// A frame header and payload, for frames the nghttp2 client would never send.
    private func rawFrame(type: UInt8, flags: UInt8, streamID: UInt32, payload: [UInt8] = []) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes([UInt8(payload.count >> 16 & 0xff), UInt8(payload.count >> 8 & 0xff), UInt8(payload.count & 0xff), type, flags])
        buffer.writeInteger(streamID)
        buffer.writeBytes(payload)
        return buffer
    }

    @Test func aClientThatSendsNoSettingsIsClosedAtThePrefaceTimeout() throws {
        let configuration = limits { $0.prefaceTimeout = .seconds(2) }
        let harness = try H2Harness(router: router(), configuration: configuration)
        advance(harness, by: .milliseconds(1900))
        #expect(harness.channel.isActive)
        advance(harness, by: .milliseconds(700))
        #expect(!harness.channel.isActive)
    }

    @Test func anUnfinishedHeaderBlockIsClosedAtTheHeaderTimeout() throws {
        let configuration = limits { $0.headerTimeout = .seconds(2) }
        let harness = try H2Harness(router: router(), configuration: configuration)
        try harness.exchange()
        // HEADERS without END_HEADERS: `:method: GET` (static index 2), and no CONTINUATION.
        try harness.channel.writeInbound(rawFrame(type: 1, flags: 0, streamID: 1, payload: [0x82]))
        advance(harness, by: .milliseconds(1900))
        #expect(harness.channel.isActive)
        advance(harness, by: .milliseconds(700))
        try harness.exchange()
        #expect(!harness.channel.isActive)
        #expect(harness.client.goAwayErrorCode == 0x0b)
    }

    @Test func aStalledRequestBodyGetsAStatusAndTheConnectionServesOn() throws {
        let configuration = limits { $0.bodyProgressTimeout = .seconds(2) }
        let harness = try H2Harness(router: router(), configuration: configuration)
        // Half a gRPC message, then nothing.
        let stalled = harness.client.post(path: "/t.S/Echo", body: Array(H2Harness.framed([1, 2, 3, 4]).prefix(6)), endStream: false)
        try harness.exchange()
        advance(harness, by: .seconds(1))
        try harness.exchange()
        #expect(harness.client.responses[stalled]?.isClosed != true)
        advance(harness, by: .milliseconds(1500))
        try harness.exchange()
        let response = try #require(harness.client.responses[stalled])
        #expect(response.grpcStatus == "4")  // DEADLINE_EXCEEDED, with the reason
        #expect(response.headers.contains { $0.0 == "grpc-message" && $0.1.contains("stalled") })
        #expect(response.isClosed)
        let next = harness.client.post(path: "/t.S/Echo", body: H2Harness.framed([9]))
        try harness.exchange()
        #expect(harness.client.responses[next]?.grpcStatus == "0")
    }

    @Test func aRequestBodyLargerThanTheWindowsGetsThrough() throws {
        // The windows reopen only as the handler takes the bytes (no automatic WINDOW_UPDATE).
        let harness = try H2Harness(router: router(), clientWindow: 4 << 20)
        let payload = [UInt8](repeating: 5, count: 3 << 20)
        let id = harness.client.post(path: "/t.S/Echo", body: H2Harness.framed(payload))
        try harness.exchange(rounds: 200)
        #expect(harness.client.responses[id]?.body.count == payload.count + 5)
        #expect(harness.client.responses[id]?.grpcStatus == "0")
    }

    @Test func outputAPeerNeverTakesClosesTheConnection() throws {
        let configuration = limits { $0.sendProgressTimeout = .seconds(2) }
        let harness = try H2Harness(router: router(), configuration: configuration, clientWindow: 0)
        harness.client.post(path: "/t.S/Burst", body: H2Harness.framed([]))
        try harness.exchange()
        advance(harness, by: .milliseconds(1500))
        #expect(harness.channel.isActive)
        advance(harness, by: .seconds(1))
        #expect(!harness.channel.isActive)
    }

    @Test func aStreamPastItsQueueBoundIsReset() throws {
        let configuration = limits { $0.maxQueuedBytesPerStream = 2000 }
        let harness = try H2Harness(router: router(), configuration: configuration, clientWindow: 0)
        let id = harness.client.post(path: "/t.S/Burst", body: H2Harness.framed([]))
        try harness.exchange()
        #expect(harness.client.responses[id]?.closedWithError == 2)  // INTERNAL_ERROR
        #expect(harness.channel.isActive)
    }

    @Test func aConnectionPastItsQueueBoundIsClosed() throws {
        let configuration = limits {
            $0.maxQueuedBytesPerStream = 4000
            $0.maxQueuedBytesPerConnection = 5000
        }
        let harness = try H2Harness(router: router(), configuration: configuration, clientWindow: 0)
        harness.client.post(path: "/t.S/Burst", body: H2Harness.framed([]))
        harness.client.post(path: "/t.S/Burst", body: H2Harness.framed([]))
        try harness.exchange()
        #expect(harness.client.goAwayErrorCode == 0x0b)
        #expect(!harness.channel.isActive)
    }

    @Test func aConnectionWithOnlyAStalledStreamIsClosedWhenIdle() throws {
        let configuration = limits { $0.idleTimeout = .seconds(5) }
        let harness = try H2Harness(router: router(), configuration: configuration)
        harness.client.post(path: "/t.S/Hang", body: H2Harness.framed([]))
        try harness.exchange()
        advance(harness, by: .seconds(4))
        #expect(harness.channel.isActive)
        advance(harness, by: .seconds(2))
        try harness.exchange()
        #expect(harness.client.receivedGoAway)
        #expect(!harness.channel.isActive)
    }

    @Test func aFloodOfEmptyDataFramesIsCutOff() throws {
        let configuration = limits {
            $0.emptyDataFrameBurst = 20
            $0.emptyDataFramesPerSecond = 0
        }
        let harness = try H2Harness(router: router(), configuration: configuration)
        let id = harness.client.post(path: "/t.S/Echo", body: [], endStream: false)
        try harness.exchange()
        var flood = ByteBuffer()
        for _ in 0..<20 { flood.writeImmutableBuffer(rawFrame(type: 0, flags: 0, streamID: UInt32(id))) }
        try harness.channel.writeInbound(flood)
        try harness.exchange()
        #expect(harness.channel.isActive)
        try harness.channel.writeInbound(rawFrame(type: 0, flags: 0, streamID: UInt32(id)))
        try harness.exchange()
        #expect(harness.client.goAwayErrorCode == 0x0b)
        #expect(!harness.channel.isActive)
    }

    @Test func resetsAreCountedWhenQueuedEvenIfNeverWritten() throws {
        let configuration = limits {
            $0.maxHeaderListSize = 1024
            $0.serverResetBurst = 3
            $0.serverResetsPerSecond = 0
        }
        let harness = try H2Harness(router: router(), configuration: configuration)
        try harness.exchange()
        // A client that reads nothing: the server's resets stay queued.
        harness.channel.isWritable = false
        let oversized = [("x-big", String(repeating: "a", count: 2000))]
        for _ in 0..<3 { harness.client.post(path: "/t.S/Echo", extraHeaders: oversized, body: H2Harness.framed([])) }
        try harness.channel.writeInbound(harness.client.outbound())
        #expect(harness.channel.isActive)
        harness.client.post(path: "/t.S/Echo", extraHeaders: oversized, body: H2Harness.framed([]))
        try harness.channel.writeInbound(harness.client.outbound())
        #expect(!harness.channel.isActive)
    }
}
