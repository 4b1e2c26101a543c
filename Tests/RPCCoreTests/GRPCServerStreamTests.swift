import NIOCore
import NIOEmbedded
import SwaplineTestKit
import Testing
@testable import RPCCore

@Suite struct GRPCServerStreamTests {
    let loop = EmbeddedEventLoop()

    private func makeStream(_ register: (inout RPCRouter) -> Void) -> (GRPCServerStream, RecordingStreamWriter) {
        var router = RPCRouter()
        register(&router)
        let writer = RecordingStreamWriter(loop: loop)
        return (GRPCServerStream(router: router, configuration: GRPCServerConfiguration(maxReceiveMessageSize: 64), writer: writer), writer)
    }

    private func head(path: String = "/t.S/M", contentType: String = "application/grpc", extra: [HeaderField] = []) -> [HeaderField] {
        [HeaderField(":method", "POST"), HeaderField(":path", path), HeaderField("content-type", contentType), HeaderField("te", "trailers")] + extra
    }

    private func framed(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        GRPCMessageFramer.frame(ByteBuffer(bytes: bytes), into: &buffer)
        return buffer
    }

    private let echo: (inout RPCRouter) -> Void = { router in
        router.register(service: "t.S", method: "M", handler: .singleRequest { message, call in call.respond(message) })
    }

    @Test func answersAUnaryCallWithHeadersMessageAndTrailers() {
        let (stream, writer) = makeStream(echo)
        stream.receiveHead(head(), endStream: false)
        stream.receiveBody(framed([1, 2, 3]))
        stream.receiveEnd()
        #expect(writer.events.count == 3)
        guard case .head(200, let headers, false) = writer.events[0] else {
            Issue.record("expected response headers, got \(writer.events)")
            return
        }
        #expect(headers.contains(HeaderField("content-type", "application/grpc")))
        #expect(writer.events[1] == .body([0, 0, 0, 0, 3, 1, 2, 3]))
        #expect(writer.statusFields["grpc-status"] == "0")
    }

    @Test func rejectsANonGRPCContentTypeWith415() {
        let (stream, writer) = makeStream(echo)
        stream.receiveHead(head(contentType: "application/json"), endStream: false)
        guard case .head(415, _, true) = writer.events.first else {
            Issue.record("expected a 415, got \(writer.events)")
            return
        }
    }

    @Test func acceptsProtoSuffixAndParameters() {
        #expect(GRPCServerStream.isGRPCContentType("application/grpc+proto"))
        #expect(GRPCServerStream.isGRPCContentType("application/grpc;charset=utf-8"))
        #expect(!GRPCServerStream.isGRPCContentType("application/grpc+json"))
        #expect(!GRPCServerStream.isGRPCContentType("application/grpcx"))
    }

    @Test func unknownMethodIsATrailersOnlyUnimplemented() {
        let (stream, writer) = makeStream(echo)
        stream.receiveHead(head(path: "/t.S/Nope"), endStream: false)
        guard case .head(200, _, true) = writer.events.first else {
            Issue.record("expected Trailers-Only, got \(writer.events)")
            return
        }
        #expect(writer.statusFields["grpc-status"] == "12")
    }

    @Test(arguments: [0, 2])
    func unaryWithZeroOrTwoMessagesIsUnimplemented(count: Int) {
        let (stream, writer) = makeStream(echo)
        stream.receiveHead(head(), endStream: false)
        for _ in 0..<count { stream.receiveBody(framed([1])) }
        stream.receiveEnd()
        #expect(writer.statusFields["grpc-status"] == "12")
        #expect(!writer.events.contains(.body([0, 0, 0, 0, 1, 1])))
    }

    @Test func oversizedDeclaredLengthIsResourceExhausted() {
        let (stream, writer) = makeStream(echo)
        stream.receiveHead(head(), endStream: false)
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt8(0))
        prefix.writeInteger(UInt32(65))
        stream.receiveBody(prefix)
        #expect(writer.statusFields["grpc-status"] == "8")
    }

    @Test func statusMessageIsPercentEncoded() {
        let (stream, writer) = makeStream { router in
            router.register(service: "t.S", method: "M", handler: .singleRequest { _, call in
                call.finish(GRPCStatus(.notFound, "no ☺ 100%"))
            })
        }
        stream.receiveHead(head(), endStream: false)
        stream.receiveBody(framed([]))
        stream.receiveEnd()
        #expect(writer.statusFields["grpc-status"] == "5")
        #expect(writer.statusFields["grpc-message"] == "no %E2%98%BA 100%25")
    }

    @Test func deadlineEndsTheCallAndCancelsTheHandler() {
        let cancelled = TestFlag()
        let (stream, writer) = makeStream { router in
            router.register(service: "t.S", method: "M", handler: .singleRequest { _, call in
                call.onCancel { status in if status.code == .deadlineExceeded { cancelled.set() } }
            })
        }
        stream.receiveHead(head(extra: [HeaderField("grpc-timeout", "50m")]), endStream: false)
        stream.receiveBody(framed([]))
        stream.receiveEnd()
        #expect(writer.events.isEmpty)
        loop.advanceTime(by: .milliseconds(60))
        #expect(writer.statusFields["grpc-status"] == "4")
        #expect(cancelled.isSet)
    }

    @Test func clientResetCancelsTheHandlerAndLaterWritesAreRefused() {
        let outcome = TestFlag()
        let captured = TestBox<ServerCall>()
        let (stream, writer) = makeStream { router in
            router.register(service: "t.S", method: "M", handler: .singleRequest { _, call in captured.value = call })
        }
        stream.receiveHead(head(), endStream: false)
        stream.receiveBody(framed([]))
        stream.receiveEnd()
        stream.streamClosed(cleanly: false)
        captured.value?.respond(ByteBuffer(bytes: [1])) { delivered in if !delivered { outcome.set() } }
        #expect(outcome.isSet)
        #expect(writer.events.isEmpty)
    }

    @Test func aResponseResetBeforeItIsWrittenIsReportedUndelivered() {
        let delivered = TestBox<Bool>()
        let (stream, writer) = makeStream { router in
            router.register(service: "t.S", method: "M", handler: .singleRequest { message, call in
                call.respond(message) { delivered.value = $0 }
            })
        }
        stream.receiveHead(head(), endStream: false)
        stream.receiveBody(framed([1]))
        stream.receiveEnd()
        #expect(writer.events.count == 3)
        #expect(delivered.value == nil)
        // The reset arrives in the same read batch, before nghttp2 sent the response.
        stream.streamClosed(cleanly: false)
        #expect(delivered.value == false)
    }

    @Test func aCleanCloseReportsDelivery() {
        let delivered = TestBox<Bool>()
        let (stream, _) = makeStream { router in
            router.register(service: "t.S", method: "M", handler: .singleRequest { message, call in
                call.respond(message) { delivered.value = $0 }
            })
        }
        stream.receiveHead(head(), endStream: false)
        stream.receiveBody(framed([1]))
        stream.receiveEnd()
        stream.streamClosed(cleanly: true)
        #expect(delivered.value == true)
    }

    @Test func interceptorsSeeTheMetadataAndTheirRefusalIsTrailersOnly() {
        let ran = TestFlag()
        let (stream, writer) = makeStream { router in
            router.interceptors = [InProcessCallTests.Gate()]
            router.register(service: "t.S", method: "M", handler: .singleRequest { message, call in
                ran.set()
                call.respond(message)
            })
        }
        stream.receiveHead(head(), endStream: false)
        stream.receiveBody(framed([1]))
        stream.receiveEnd()
        #expect(writer.events.count == 1 && writer.statusFields["grpc-status"] == "16" && !ran.isSet)

        let (allowed, allowedWriter) = makeStream { router in
            router.interceptors = [InProcessCallTests.Gate()]
            router.register(service: "t.S", method: "M", handler: .singleRequest { message, call in
                #expect(call.caller?.subject == "tester" && call.context.surface == .grpc)
                call.respond(message)
            })
        }
        allowed.receiveHead(head(extra: [HeaderField("authorization", "Bearer ok")]), endStream: false)
        allowed.receiveBody(framed([1]))
        allowed.receiveEnd()
        #expect(allowedWriter.statusFields["grpc-status"] == "0" && allowedWriter.messages == [[1]])
    }

    @Test func malformedTimeoutIsInvalidArgument() {
        let (stream, writer) = makeStream(echo)
        stream.receiveHead(head(extra: [HeaderField("grpc-timeout", "soon")]), endStream: false)
        #expect(writer.statusFields["grpc-status"] == "3")
    }
}

final class TestFlag: @unchecked Sendable {
    private var value = false
    func set() { value = true }
    var isSet: Bool { value }
}

final class TestBox<T>: @unchecked Sendable {
    var value: T?
}

@Suite struct MaxUnaryDeadlineTests {
    let loop = EmbeddedEventLoop()
    let openStreams = TestBox<[GRPCServerStream]>()

    init() { openStreams.value = [] }

    /// A handler that never answers, registered as `method` (unary or streaming responses).
    /// The stream is kept as a transport keeps it while the exchange is open.
    private func hangingCall(streamsResponses: Bool, grpcTimeout: String?) -> RecordingStreamWriter {
        var router = RPCRouter()
        router.register(MethodDescriptor(service: "t.S", method: "Wait", streamsResponses: streamsResponses), handler: .singleRequest { _, _ in })
        var configuration = GRPCServerConfiguration()
        configuration.maxUnaryDeadline = .seconds(5)
        let writer = RecordingStreamWriter(loop: loop)
        let stream = GRPCServerStream(router: router, configuration: configuration, writer: writer)
        var fields = [HeaderField(":method", "POST"), HeaderField(":path", "/t.S/Wait"), HeaderField("content-type", "application/grpc")]
        if let grpcTimeout { fields.append(HeaderField("grpc-timeout", grpcTimeout)) }
        stream.receiveHead(fields, endStream: false)
        stream.receiveRequestBody()
        openStreams.value!.append(stream)
        return writer
    }

    @Test func aUnaryCallWithALongerDeadlineEndsAtTheServerMaximum() {
        let writer = hangingCall(streamsResponses: false, grpcTimeout: "60S")
        loop.advanceTime(by: .milliseconds(4999))
        #expect(writer.statusFields["grpc-status"] == nil)
        loop.advanceTime(by: .milliseconds(1))
        #expect(writer.statusFields["grpc-status"] == "4")
    }

    /// Without a deadline of its own the call is on its loop's deadline queue, checked once a
    /// second: it ends within a second after the maximum, and never before it.
    @Test func aUnaryCallWithoutADeadlineEndsWithinASecondOfTheServerMaximum() {
        let early = hangingCall(streamsResponses: false, grpcTimeout: nil)
        loop.advanceTime(by: .milliseconds(2500))
        let late = hangingCall(streamsResponses: false, grpcTimeout: nil)
        loop.advanceTime(by: .milliseconds(2499))
        #expect(early.statusFields["grpc-status"] == nil)
        loop.advanceTime(by: ServerDeadlineQueue.checkInterval)
        #expect(early.statusFields["grpc-status"] == "4")
        #expect(late.statusFields["grpc-status"] == nil)
        loop.advanceTime(by: .milliseconds(2500) + ServerDeadlineQueue.checkInterval)
        #expect(late.statusFields["grpc-status"] == "4")
    }

    @Test func aShorterClientDeadlineStillApplies() {
        let writer = hangingCall(streamsResponses: false, grpcTimeout: "1S")
        loop.advanceTime(by: .seconds(1))
        #expect(writer.statusFields["grpc-status"] == "4")
    }

    @Test func aStreamingMethodIsNotBounded() {
        let writer = hangingCall(streamsResponses: true, grpcTimeout: nil)
        loop.advanceTime(by: .seconds(3600))
        #expect(writer.statusFields["grpc-status"] == nil)
    }
}

extension GRPCServerStream {
    /// An empty request message and the end of the request.
    fileprivate func receiveRequestBody() {
        var buffer = ByteBuffer()
        GRPCMessageFramer.frame(ByteBuffer(), into: &buffer)
        receiveBody(buffer)
        receiveEnd()
    }
}
