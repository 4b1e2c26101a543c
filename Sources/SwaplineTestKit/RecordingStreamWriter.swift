import NIOCore
import NIOEmbedded
import RPCCore

/// An `HTTPStreamWriter` that records what the gRPC layer asks the transport to send, for
/// tests that drive a `GRPCServerStream` without sockets on an `EmbeddedEventLoop`.
public final class RecordingStreamWriter: HTTPStreamWriter {
    public enum Event: Equatable {
        case head(status: Int, headers: [HeaderField], endStream: Bool)
        case body([UInt8])
        case end(trailers: [HeaderField])
        case reset
    }

    public let loop: EmbeddedEventLoop
    public private(set) var events: [Event] = []
    public var queuedBodyBytes = 0
    /// The connection the exchange pretends to be on (per-connection limits count by it).
    public var connectionID: ConnectionID?
    /// The client address the transport reports; tests of per-address limits set it.
    public var peerAddress: String?

    public init(loop: EmbeddedEventLoop, connectionID: ConnectionID? = nil) {
        self.loop = loop
        self.connectionID = connectionID
    }

    public var eventLoop: any EventLoop { loop }
    public func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        events.append(.head(status: status, headers: headers, endStream: endStream))
    }
    public func writeBody(_ bytes: ByteBuffer) { events.append(.body(Array(bytes.readableBytesView))) }
    public func writeEnd(trailers: [HeaderField]) { events.append(.end(trailers: trailers)) }
    public func reset() { events.append(.reset) }

    /// The trailers of the response, whether Trailers-Only or after a body.
    public var statusFields: [String: String] {
        for event in events.reversed() {
            switch event {
            case .head(_, let headers, true), .end(let headers):
                return Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
            default: continue
            }
        }
        return [:]
    }

    /// The response messages, without their gRPC prefixes.
    public var messages: [[UInt8]] {
        var deframer = GRPCMessageDeframer(maxMessageSize: .max)
        for case .body(let body) in events { deframer.append(ByteBuffer(bytes: body)) }
        var messages: [[UInt8]] = []
        while let message = try? deframer.next() { messages.append(Array(message.readableBytesView)) }
        return messages
    }
}

/// Sends a unary request through a `GRPCServerStream` of `router`, as a transport would.
public func sendRequest(_ message: ByteBuffer, path: String, router: RPCRouter, writer: RecordingStreamWriter, extraHeaders: [HeaderField] = []) -> GRPCServerStream {
    let stream = GRPCServerStream(router: router, configuration: GRPCServerConfiguration(), writer: writer)
    stream.receiveRequest(path: path, message: message, extraHeaders: extraHeaders)
    return stream
}
