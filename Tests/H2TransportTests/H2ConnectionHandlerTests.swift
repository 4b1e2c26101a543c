import Logging
import NIOCore
import NIOEmbedded
import RPCCore
import Testing
@testable import H2Transport

/// Drives `H2ConnectionHandler` in an `EmbeddedChannel` with a real nghttp2 client session.
final class H2Harness {
    let channel = EmbeddedChannel()
    let client: NGHTTP2TestClient

    init(router: RPCRouter, configuration: H2Configuration = H2Configuration(), clientWindow: UInt32 = 65_535) throws {
        client = NGHTTP2TestClient(initialWindowSize: clientWindow)
        let handler = H2ConnectionHandler(
            configuration: configuration,
            factory: GRPCStreamHandlerFactory(router: router, configuration: GRPCServerConfiguration()),
            eventLoop: channel.eventLoop, logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    /// Carries bytes both ways until neither side has anything more to say.
    func exchange(rounds: Int = 20) throws {
        for _ in 0..<rounds {
            var moved = false
            let fromClient = client.outbound()
            if fromClient.readableBytes > 0 {
                try channel.writeInbound(fromClient)
                moved = true
            }
            (channel.eventLoop as! EmbeddedEventLoop).run()
            while let fromServer = try channel.readOutbound(as: ByteBuffer.self) {
                client.receive(fromServer)
                moved = true
            }
            if !moved { return }
        }
    }

    static func framed(_ bytes: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        GRPCMessageFramer.frame(ByteBuffer(bytes: bytes), into: &buffer)
        return Array(buffer.readableBytesView)
    }
}

@Suite struct H2ConnectionHandlerTests {
    private func echoRouter() -> RPCRouter {
        var router = RPCRouter()
        router.register(service: "t.S", method: "Echo", handler: .singleRequest { message, call in call.respond(message) })
        router.register(service: "t.S", method: "Stream", handler: .singleRequest { message, call in
            for _ in 0..<3 { call.send(message) }
            call.finish(.ok)
        })
        return router
    }

    @Test func unaryCallGetsHeadersMessageAndTrailers() throws {
        let harness = try H2Harness(router: echoRouter())
        let id = harness.client.post(path: "/t.S/Echo", body: H2Harness.framed([1, 2, 3]))
        try harness.exchange()
        let response = try #require(harness.client.responses[id])
        #expect(response.status == "200")
        #expect(response.headers.contains { $0 == ("content-type", "application/grpc") })
        #expect(response.body == H2Harness.framed([1, 2, 3]))
        #expect(response.trailers.first { $0.0 == "grpc-status" }?.1 == "0")
        #expect(response.isClosed && response.closedWithError == nil)
    }

    @Test func manyCallsOnOneConnection() throws {
        let harness = try H2Harness(router: echoRouter())
        let ids = (0..<50).map { harness.client.post(path: "/t.S/Echo", body: H2Harness.framed([UInt8($0)])) }
        try harness.exchange(rounds: 100)
        for (index, id) in ids.enumerated() {
            #expect(harness.client.responses[id]?.body == H2Harness.framed([UInt8(index)]))
        }
    }

    @Test func streamingRespectsASmallFlowControlWindow() throws {
        // A 100-byte window forces the data provider to defer and resume several times.
        let harness = try H2Harness(router: echoRouter(), clientWindow: 100)
        let payload = [UInt8](repeating: 7, count: 90)
        let id = harness.client.post(path: "/t.S/Stream", body: H2Harness.framed(payload))
        try harness.exchange(rounds: 100)
        let response = try #require(harness.client.responses[id])
        #expect(response.body == Array((0..<3).map { _ in H2Harness.framed(payload) }.joined()))
        #expect(response.grpcStatus == "0")
    }

    @Test func nonGRPCContentTypeIs415() throws {
        let harness = try H2Harness(router: echoRouter())
        let id = harness.client.post(path: "/t.S/Echo", contentType: "application/json", body: Array("{}".utf8))
        try harness.exchange()
        #expect(harness.client.responses[id]?.status == "415")
    }

    @Test func oversizedHeaderListResetsTheStream() throws {
        var configuration = H2Configuration()
        configuration.maxHeaderListSize = 1024
        let harness = try H2Harness(router: echoRouter(), configuration: configuration)
        let id = harness.client.post(path: "/t.S/Echo", extraHeaders: [("x-big", String(repeating: "a", count: 2000))], body: H2Harness.framed([]))
        try harness.exchange()
        #expect(harness.client.responses[id]?.closedWithError != nil)
        let next = harness.client.post(path: "/t.S/Echo", body: H2Harness.framed([9]))
        try harness.exchange()
        #expect(harness.client.responses[next]?.grpcStatus == "0")
    }

    @Test func aClientThatProvokesTooManyResetsIsCutOff() throws {
        var configuration = H2Configuration()
        configuration.maxHeaderListSize = 1024
        configuration.serverResetBurst = 3
        configuration.serverResetsPerSecond = 0
        let harness = try H2Harness(router: echoRouter(), configuration: configuration)
        let oversized = [("x-big", String(repeating: "a", count: 2000))]
        for _ in 0..<3 { harness.client.post(path: "/t.S/Echo", extraHeaders: oversized, body: H2Harness.framed([])) }
        try harness.exchange()
        #expect(!harness.client.receivedGoAway && harness.channel.isActive)
        harness.client.post(path: "/t.S/Echo", extraHeaders: oversized, body: H2Harness.framed([]))
        try harness.exchange()
        #expect(harness.client.goAwayErrorCode == 0x0b)  // ENHANCE_YOUR_CALM
        #expect(!harness.channel.isActive)
    }

    @Test func clientResetCancelsTheHandler() throws {
        let cancelled = Flag()
        var router = RPCRouter()
        router.register(service: "t.S", method: "Hang", handler: .singleRequest { _, call in
            call.onCancel { _ in cancelled.set() }
        })
        let harness = try H2Harness(router: router)
        let id = harness.client.post(path: "/t.S/Hang", body: H2Harness.framed([]))
        try harness.exchange()
        #expect(!cancelled.isSet)
        harness.client.reset(streamID: id)
        try harness.exchange()
        #expect(cancelled.isSet)
    }

    @Test func gracefulShutdownSendsGoAwayAndClosesWhenIdle() throws {
        let harness = try H2Harness(router: echoRouter())
        try harness.exchange()
        harness.channel.pipeline.fireUserInboundEventTriggered(H2GracefulShutdownEvent())
        try harness.exchange()
        (harness.channel.eventLoop as! EmbeddedEventLoop).advanceTime(by: .milliseconds(250))
        try harness.exchange()
        #expect(harness.client.receivedGoAway)
        #expect(!harness.channel.isActive)
    }
}

final class Flag: @unchecked Sendable {
    private(set) var isSet = false
    func set() { isSet = true }
}

/// Records weak references to the handlers a factory makes, to check they are freed.
final class TrackingFactory: HTTPStreamHandlerFactory, @unchecked Sendable {
    private let inner: any HTTPStreamHandlerFactory
    private(set) var made: [WeakHandler] = []

    struct WeakHandler {
        weak var handler: (any HTTPStreamHandler & AnyObject)?
    }

    init(_ inner: any HTTPStreamHandlerFactory) { self.inner = inner }

    func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler {
        let handler = inner.makeHandler(writer: writer)
        made.append(WeakHandler(handler: handler as AnyObject as? (any HTTPStreamHandler & AnyObject)))
        return handler
    }
}

@Suite struct H2StreamLifetimeTests {
    @Test func finishedCallsFreeTheirStreamObjects() throws {
        var router = RPCRouter()
        router.register(service: "t.S", method: "Echo", handler: .singleRequest { message, call in call.respond(message) })
        let factory = TrackingFactory(GRPCStreamHandlerFactory(router: router, configuration: GRPCServerConfiguration()))
        let channel = EmbeddedChannel()
        let client = NGHTTP2TestClient()
        try channel.pipeline.syncOperations.addHandler(
            H2ConnectionHandler(configuration: H2Configuration(), factory: factory, eventLoop: channel.eventLoop, logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let ids = (0..<10).map { client.post(path: "/t.S/Echo", body: H2Harness.framed([UInt8($0)])) }
        for _ in 0..<20 {
            try channel.writeInbound(client.outbound())
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) { client.receive(bytes) }
        }
        #expect(ids.allSatisfy { client.responses[$0]?.isClosed == true })
        #expect(factory.made.count == 10)
        #expect(factory.made.allSatisfy { $0.handler == nil }, "a finished exchange is kept alive by a reference cycle")
    }
}
