import NIOCore
import NIOEmbedded
import SwaplineTestKit
import Testing
@testable import RPCCore

@Suite struct InProcessCallTests {
    let loop = EmbeddedEventLoop()
    static let echo = RPCMethod<SerializedMessage, SerializedMessage>(service: "t.S", method: "Echo")

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

    private func run(
        _ router: RPCRouter, _ method: String, metadata: Metadata = Metadata(), queued: @escaping () -> Int = { 0 }
    ) -> (InProcessCall, Outcome) {
        let outcome = Outcome()
        let call = InProcessCall(
            eventLoop: loop, queuedBytes: queued,
            onMessage: { outcome.messages.append(String(buffer: ($0 as! SerializedMessage).bytes)) }, onEnd: { status, _ in outcome.status = status })
        call.start(
            router: router, method: RPCMethod<SerializedMessage, SerializedMessage>(service: "t.S", method: method),
            request: SerializedMessage(ByteBuffer(string: "hi")), metadata: metadata)
        loop.run()
        return (call, outcome)
    }

    @Test func unaryCallReturnsTheMessageAndOK() {
        let (_, outcome) = run(router(), "Echo")
        #expect(outcome.messages == ["hi"] && outcome.status == .ok)
    }

    @Test func errorStatusComesBack() {
        let (_, outcome) = run(router(), "Fail")
        #expect(outcome.messages.isEmpty && outcome.status == GRPCStatus(.notFound, "nothing 100% here"))
        #expect(run(router(), "Nope").1.status?.code == .unimplemented)
    }

    @Test func theCallersQueuePacesAStreamingHandler() {
        var queued = 10
        let (call, outcome) = run(router(), "Stream", queued: { queued })
        #expect(outcome.messages == ["hi"] && outcome.status == nil)
        queued = 0
        call.drained()
        loop.run()
        #expect(outcome.messages == ["hi", "hi"] && outcome.status == .ok)
    }

    @Test func aClosedCallIsFreed() {
        weak var released: InProcessCall?
        do {
            let (call, outcome) = run(router(), "Echo")
            #expect(outcome.status == .ok)
            released = call
            call.close(delivered: true)
        }
        #expect(released == nil, "the call and its ServerCall must not keep each other alive")
    }

    @Test func theHandlerLearnsWhetherTheResponseWasDelivered() {
        let delivered = TestBox<Bool>()
        let (call, outcome) = run(router { delivered.value = $0 }, "Echo")
        #expect(outcome.status == .ok && delivered.value == nil)
        call.close(delivered: false)
        #expect(delivered.value == false)
    }

    @Test func aClientThatGoesAwayCancelsTheHandler() {
        var router = RPCRouter()
        let cancelled = TestBox<GRPCStatus>()
        router.register(service: "t.S", method: "Hang", handler: .singleRequest { _, call in
            call.onCancel { cancelled.value = $0 }
        })
        let (call, outcome) = run(router, "Hang")
        call.close(delivered: false)
        #expect(cancelled.value?.code == .cancelled && outcome.status == nil)
    }

    /// A message that counts how often it is put on or read off the wire.
    struct CountedMessage: RPCMessage {
        static let serializations = TestBox<Int>()
        static let parses = TestBox<Int>()
        let token: Int

        init(token: Int) { self.token = token }

        init(serializedBytes bytes: ByteBuffer) throws {
            Self.parses.value = (Self.parses.value ?? 0) + 1
            token = Int(bytes.getInteger(at: bytes.readerIndex, as: Int64.self) ?? 0)
        }

        func serialize(into buffer: inout ByteBuffer) {
            Self.serializations.value = (Self.serializations.value ?? 0) + 1
            buffer.writeInteger(Int64(token))
        }
    }

    @Test func typedMethodsTakeAndAnswerValuesWithoutSerializing() {
        let method = RPCMethod<CountedMessage, CountedMessage>(service: "t.Counted", method: "Double")
        var router = RPCRouter()
        router.register(method) { request, call in call.respond(CountedMessage(token: request.token * 2)) }
        var answer: CountedMessage?
        var status: GRPCStatus?
        let call = InProcessCall(
            eventLoop: loop, queuedBytes: { 0 }, onMessage: { answer = $0 as? CountedMessage }, onEnd: { ended, _ in status = ended })
        call.start(router: router, method: method, request: CountedMessage(token: 21), metadata: Metadata())
        loop.run()
        #expect(status == .ok && answer?.token == 42)
        #expect(CountedMessage.serializations.value == nil && CountedMessage.parses.value == nil)
    }

    struct Gate: ServerInterceptor {
        func intercept(_ context: inout ServerContext) -> GRPCStatus? {
            guard context.metadata["authorization"] == "Bearer ok" else { return GRPCStatus(.unauthenticated, "who are you?") }
            context.caller = CallerIdentity(subject: "tester", role: "client")
            return nil
        }
    }

    @Test func interceptorsRunBeforeTheHandlerAndCanRefuse() {
        var router = RPCRouter()
        router.interceptors = [Gate()]
        let seen = TestBox<CallerIdentity>()
        router.register(Self.echo) { request, call in
            seen.value = call.caller
            call.respond(request)
        }
        let refused = run(router, "Echo").1
        #expect(refused.status == GRPCStatus(.unauthenticated, "who are you?") && refused.messages.isEmpty && seen.value == nil)
        let allowed = run(router, "Echo", metadata: ["authorization": "Bearer ok"]).1
        #expect(allowed.status == .ok && seen.value == CallerIdentity(subject: "tester", role: "client"))
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
