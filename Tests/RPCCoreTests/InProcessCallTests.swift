import NIOCore
import NIOEmbedded
import SwaplineTestKit
import Testing
@testable import RPCCore

@Suite struct InProcessCallTests {
    let loop = EmbeddedEventLoop()

    private func router(delivered: @escaping @Sendable (Bool) -> Void = { _ in }) -> RPCRouter {
        var router = RPCRouter()
        router.register(service: "t.S", method: "Echo", handler: .singleRequest { message, call in
            call.respond(message, onComplete: delivered)
        })
        router.register(service: "t.S", method: "Fail", handler: .singleRequest { _, call in
            call.finish(GRPCStatus(.notFound, "nothing 100% here"))
        })
        router.register(service: "t.S", method: "Stream", handler: .singleRequest { message, call in
            call.send(message)
            call.whenOutboundDrained {
                call.send(message)
                call.finish(.ok)
            }
        })
        return router
    }

    /// What a call produced so far.
    final class Outcome {
        var messages: [String] = []
        var status: GRPCStatus?
    }

    private func run(_ router: RPCRouter, _ path: String, queued: @escaping () -> Int = { 0 }) -> (InProcessCall, Outcome) {
        let outcome = Outcome()
        let call = InProcessCall(
            router: router, configuration: GRPCServerConfiguration(), path: path, eventLoop: loop, queuedBytes: queued,
            onMessage: { outcome.messages.append(String(buffer: $0)) }, onEnd: { outcome.status = $0 })
        call.start(request: ByteBuffer(string: "hi"))
        loop.run()
        return (call, outcome)
    }

    @Test func unaryCallReturnsTheMessageAndOK() {
        let (_, outcome) = run(router(), "/t.S/Echo")
        #expect(outcome.messages == ["hi"] && outcome.status == .ok)
    }

    @Test func errorStatusComesBackDecoded() {
        let (_, outcome) = run(router(), "/t.S/Fail")
        #expect(outcome.messages.isEmpty && outcome.status == GRPCStatus(.notFound, "nothing 100% here"))
        #expect(run(router(), "/t.S/Nope").1.status?.code == .unimplemented)
    }

    @Test func theCallersQueuePacesAStreamingHandler() {
        var queued = 10
        let (call, outcome) = run(router(), "/t.S/Stream", queued: { queued })
        #expect(outcome.messages == ["hi"] && outcome.status == nil)
        queued = 0
        call.drained()
        loop.run()
        #expect(outcome.messages == ["hi", "hi"] && outcome.status == .ok)
    }

    @Test func aClosedCallIsFreed() {
        weak var released: InProcessCall?
        do {
            let (call, outcome) = run(router(), "/t.S/Echo")
            #expect(outcome.status == .ok)
            released = call
            call.close(delivered: true)
        }
        #expect(released == nil, "the call, its stream and its ServerCall form a cycle")
    }

    @Test func theHandlerLearnsWhetherTheResponseWasDelivered() {
        let delivered = TestBox<Bool>()
        let (call, outcome) = run(router { delivered.value = $0 }, "/t.S/Echo")
        #expect(outcome.status == .ok && delivered.value == nil)
        call.close(delivered: false)
        #expect(delivered.value == false)
    }
}

@Suite struct ContentTypeRouterTests {
    let loop = EmbeddedEventLoop()

    /// A plain HTTP handler that answers 299.
    struct Other: HTTPStreamHandlerFactory {
        final class Handler: HTTPStreamHandler {
            let writer: any HTTPStreamWriter
            init(writer: any HTTPStreamWriter) { self.writer = writer }
            func receiveHead(_ fields: [HeaderField], endStream: Bool) { writer.writeHead(status: 299, headers: [], endStream: true) }
            func receiveBody(_ bytes: ByteBuffer) {}
            func receiveEnd() {}
            func bodyDrained() {}
            func streamClosed(cleanly: Bool) {}
        }
        func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler { Handler(writer: writer) }
    }

    private func status(path: String, contentType: String?) -> Int? {
        var router = RPCRouter()
        router.register(service: "t.S", method: "M", handler: .singleRequest { message, call in call.respond(message) })
        let factory = ContentTypeRouter(grpc: GRPCStreamHandlerFactory(router: router, configuration: GRPCServerConfiguration()), http: Other())
        let writer = RecordingStreamWriter(loop: loop)
        let handler = factory.makeHandler(writer: writer)
        var fields = [HeaderField(":method", "POST"), HeaderField(":path", path)]
        if let contentType { fields.append(HeaderField("content-type", contentType)) }
        handler.receiveHead(fields, endStream: true)
        guard case .head(let status, _, _)? = writer.events.first else { return nil }
        return status
    }

    @Test func grpcContentTypeGoesToGRPC() {
        #expect(status(path: "/api/x", contentType: "application/grpc+proto") == 200)
    }

    @Test func grpcServicePathsStayGRPCWhateverTheContentType() {
        #expect(status(path: "/t.S/M", contentType: "application/json") == 415)
        #expect(status(path: "/t.S/M", contentType: nil) == 415)
    }

    @Test func everythingElseGoesToTheOtherHandler() {
        #expect(status(path: "/health", contentType: nil) == 299)
        #expect(status(path: "/u.S/M", contentType: "application/json") == 299)
    }
}
