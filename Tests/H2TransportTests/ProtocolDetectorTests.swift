import Logging
import NIOCore
import NIOEmbedded
import NIOTLS
import RPCCore
import Testing
@testable import H2Transport

/// Answers every request `200` with `<method> <path> <body bytes received>`.
struct EchoFactory: HTTPStreamHandlerFactory {
    final class Handler: HTTPStreamHandler {
        let writer: any HTTPStreamWriter
        var head = ""
        var received = 0
        init(writer: any HTTPStreamWriter) { self.writer = writer }
        func receiveHead(_ fields: [HeaderField], endStream: Bool) {
            let value = { (name: String) in fields.first { $0.name == name }?.value ?? "" }
            head = "\(value(":method")) \(value(":path"))"
            if value(":path") == "/early" { writer.writeHead(status: 413, headers: [], endStream: true) }
        }
        func receiveBody(_ bytes: ByteBuffer) { received += bytes.readableBytes }
        func receiveEnd() {
            guard head != "POST /early" else { return }
            writer.writeHead(status: 200, headers: [HeaderField("content-type", "text/plain")], endStream: false)
            writer.writeBody(ByteBuffer(string: "\(head) \(received)"))
            writer.writeEnd(trailers: [])
        }
        func bodyDrained() {}
        func streamClosed(cleanly: Bool) {}
    }

    func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler { Handler(writer: writer) }
}

@Suite struct ProtocolDetectorTests {
    let channel = EmbeddedChannel()

    init() throws {
        try channel.pipeline.syncOperations.addHandler(
            ProtocolDetector(configuration: H2Configuration(), factory: EchoFactory(), logger: Logger(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    private func send(_ text: String) throws -> String { try channel.exchange(ByteBuffer(string: text)) }

    @Test func http1RequestsShareAKeepAliveConnection() throws {
        let first = try send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n") && first.contains("GET /a 0"))
        let second = try send("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n") && second.contains("POST /b 5"))
        #expect(channel.isActive)
    }

    @Test func aPartialPrefaceIsClosedAtThePrefaceTimeout() throws {
        try channel.writeInbound(ByteBuffer(bytes: ProtocolDetector.http2Preface.prefix(10)))
        let loop = channel.embeddedEventLoop
        loop.advanceTime(by: H2Configuration().prefaceTimeout - .milliseconds(1))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test func expectContinueGetsAnInterimResponse() throws {
        let interim = try send("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(try send("ok").contains("POST /c 2"))
    }

    @Test func aFinalAnswerInsteadOfContinueClosesTheConnection() throws {
        let answer = try send("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n") && answer.lowercased().contains("connection: close"))
        #expect(!channel.isActive)
    }

    @Test func theHTTP2PrefaceSelectsNGHTTP2() throws {
        try channel.writeInbound(ByteBuffer(bytes: ProtocolDetector.http2Preface))
        (channel.eventLoop as! EmbeddedEventLoop).run()
        let settings = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(settings.getInteger(at: 3, as: UInt8.self) == 4)  // a SETTINGS frame
        #expect(throws: Never.self) { try channel.pipeline.syncOperations.handler(type: H2ConnectionHandler.self) }
    }

    @Test func aGracefulShutdownClosesAnIdleConnection() throws {
        channel.pipeline.fireUserInboundEventTriggered(H2GracefulShutdownEvent())
        #expect(!channel.isActive)
    }
}

/// Behind a TLS handler: the protocol ALPN negotiated decides, the handshake has its own timeout.
@Suite struct ProtocolDetectorBehindTLSTests {
    let channel = EmbeddedChannel()
    let configuration = H2Configuration()

    init() throws {
        try channel.pipeline.syncOperations.addHandler(
            ProtocolDetector(configuration: configuration, factory: EchoFactory(), logger: Logger(label: "test"), behindTLS: true))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    private var loop: EmbeddedEventLoop { channel.eventLoop as! EmbeddedEventLoop }

    private func handshake(alpn: String?) {
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: alpn))
        loop.run()
    }

    private func send(_ bytes: ByteBuffer) throws -> String { try channel.exchange(bytes) }

    @Test func alpnH2InstallsNGHTTP2AtOnce() throws {
        handshake(alpn: "h2")
        // The server's SETTINGS go out before the client has sent a byte.
        let settings = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(settings.getInteger(at: 3, as: UInt8.self) == 4)
        #expect(throws: Never.self) { try channel.pipeline.syncOperations.handler(type: H2ConnectionHandler.self) }
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: ProtocolDetector.self) }
    }

    @Test(arguments: ["http/1.1", nil] as [String?])
    func otherwiseTheFirstBytesDecide(alpn: String?) throws {
        handshake(alpn: alpn)
        #expect(throws: Never.self) { try channel.pipeline.syncOperations.handler(type: ProtocolDetector.self) }
        let answer = try send(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.contains("GET /a 0"))
    }

    @Test(arguments: ["http/1.1", nil] as [String?])
    func thePrefaceSelectsHTTP2EvenAfterALPNChoseHTTP1(alpn: String?) throws {
        handshake(alpn: alpn)
        try channel.writeInbound(ByteBuffer(bytes: ProtocolDetector.http2Preface))
        loop.run()
        let settings = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(settings.getInteger(at: 3, as: UInt8.self) == 4)
        #expect(throws: Never.self) { try channel.pipeline.syncOperations.handler(type: H2ConnectionHandler.self) }
    }

    @Test func aHandshakeThatNeverCompletesIsClosed() throws {
        loop.advanceTime(by: configuration.tlsHandshakeTimeout - .milliseconds(1))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test func afterTheHandshakeThePrefaceTimeoutApplies() throws {
        loop.advanceTime(by: configuration.tlsHandshakeTimeout - .milliseconds(1))
        handshake(alpn: nil)
        loop.advanceTime(by: configuration.prefaceTimeout - .milliseconds(1))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }
}

extension EmbeddedChannel {
    /// Feeds `bytes` in, runs the loop, and returns everything written out since, as text.
    func exchange(_ bytes: ByteBuffer) throws -> String {
        try writeInbound(bytes)
        (eventLoop as! EmbeddedEventLoop).run()
        var out = ""
        while let part = try readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = part else { continue }
            out += String(buffer: buffer)
        }
        return out
    }
}
