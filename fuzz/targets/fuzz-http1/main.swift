// libFuzzer target: the bytes a client sends on a plain-text connection, through the real
// first handler of every connection (ProtocolDetector) and what it installs: NIOHTTP1's parser
// and HTTP1ConnectionHandler (or, for input starting with the HTTP/2 preface,
// H2ConnectionHandler and nghttp2), in an EmbeddedChannel.
//
// Input: a byte giving the size of the pieces the rest is delivered in (0: all at once), then
// the bytes. The stub handler answers `/early...` paths at the head (as the REST shim does
// with a 404 or 413) and every other request after its body. Time then runs past every
// timeout, so the timers' code runs too. Findings are traps, sanitizer reports and leaks.
import FuzzDriver
@testable import H2Transport
import Logging
import NIOCore
import NIOEmbedded
import RPCCore

/// Answers each request with its body size, or at once for an `/early` path.
final class StubHandler: HTTPStreamHandler {
    let writer: any HTTPStreamWriter
    var bodyBytes = 0
    var answered = false

    init(writer: any HTTPStreamWriter) { self.writer = writer }

    func receiveHead(_ fields: [HeaderField], endStream: Bool) {
        let path = fields.first { $0.name == ":path" }?.value ?? ""
        if path.hasPrefix("/early") { answer(status: 413) } else if endStream { answer(status: 200) }
    }

    func receiveBody(_ bytes: ByteBuffer) { bodyBytes += bytes.readableBytes }
    func receiveEnd() { answer(status: 200) }
    func bodyDrained() {}
    func streamClosed(cleanly: Bool) {}

    private func answer(status: Int) {
        guard !answered else { return }
        answered = true
        writer.writeHead(status: status, headers: [HeaderField("content-type", "text/plain")], endStream: false)
        writer.writeBody(ByteBuffer(string: "\(bodyBytes)\n"))
        writer.writeEnd(trailers: [])
    }
}

struct StubFactory: HTTPStreamHandlerFactory {
    func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler { StubHandler(writer: writer) }
}

let silentLogger = Logger(label: "fuzz-http1") { _ in SwiftLogNoOpLogHandler() }

runFuzzer { bytes in
    guard let pieceByte = bytes.first else { return }
    serve(Array(bytes.dropFirst()), pieceSize: pieceByte == 0 ? Int.max : Int(pieceByte))
}

@MainActor
func serve(_ input: [UInt8], pieceSize: Int) {
    let channel = EmbeddedChannel()
    let detector = ProtocolDetector(configuration: H2Configuration(), factory: StubFactory(), logger: silentLogger)
    try! channel.pipeline.syncOperations.addHandler(detector)
    try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    var offset = 0
    while offset < input.count, channel.isActive {
        let end = offset + min(pieceSize, input.count - offset)
        // A protocol error closes the channel; the error itself is what the pipeline reports.
        _ = try? channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
        offset = end
        channel.embeddedEventLoop.run()
    }
    channel.embeddedEventLoop.advanceTime(by: .hours(1))
    _ = try? channel.finish()
}
