import NIOCore

/// One RPC of a router called in process: the request goes through the same
/// `GRPCServerStream` (routing, message rules, cancellation, delivery callbacks) as a call from
/// the network, and the response comes back as deframed messages and a final status.
///
/// The REST shim uses it so that every route runs its RPC's own handler. The call plays the
/// transport's part for the stream it drives: the caller's outbound queue stands in for the
/// stream's (so a streaming handler is paced by the real client), and the caller reports when
/// its own response was delivered or lost, which the handler hears as its stream closing.
///
/// Confined to `eventLoop`, like the stream it drives.
public final class InProcessCall: HTTPStreamWriter {
    public let eventLoop: any EventLoop
    private let queuedBytes: () -> Int
    private let onMessage: (ByteBuffer) -> Void
    private let onEnd: (GRPCStatus) -> Void
    private let path: String
    /// Released when the caller closes the call, which breaks the stream <-> writer cycle.
    private var stream: GRPCServerStream?
    private var deframer = GRPCMessageDeframer(maxMessageSize: Int(Int32.max))
    private var ended = false

    /// Prepares a call of `path`; `start` sends its request.
    ///
    /// - Parameters:
    ///   - queuedBytes: the caller's response bytes not yet handed to its connection.
    ///   - onMessage: each response message (protobuf bytes).
    ///   - onEnd: the final status, once.
    public init(
        router: RPCRouter, configuration: GRPCServerConfiguration, path: String, eventLoop: any EventLoop,
        queuedBytes: @escaping () -> Int, onMessage: @escaping (ByteBuffer) -> Void,
        onEnd: @escaping (GRPCStatus) -> Void
    ) {
        self.eventLoop = eventLoop
        self.queuedBytes = queuedBytes
        self.onMessage = onMessage
        self.onEnd = onEnd
        self.path = path
        self.stream = GRPCServerStream(router: router, configuration: configuration, writer: self)
    }

    /// Sends the one request message (protobuf bytes, no gRPC prefix). The handler may answer
    /// before this returns, so the caller keeps the call before starting it.
    public func start(request: ByteBuffer) {
        stream?.receiveRequest(path: path, message: request)
    }

    /// The caller's queue drained: a streaming handler may send the next message.
    public func drained() {
        stream?.bodyDrained()
    }

    /// The caller's response is over: `delivered` when all of it reached its connection, `false`
    /// when its client went away first (the handler is then cancelled, or takes back what the
    /// response handed out).
    public func close(delivered: Bool) {
        let stream = self.stream
        self.stream = nil
        stream?.streamClosed(cleanly: delivered)
    }

    // MARK: - HTTPStreamWriter (driven by the stream)

    public var queuedBodyBytes: Int { queuedBytes() }

    public func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        guard status == 200 else {
            return end(GRPCStatus(.internal, "the in-process call was refused with HTTP \(status)"))
        }
        if endStream { end(Self.status(in: headers)) }
    }

    public func writeBody(_ bytes: ByteBuffer) {
        guard !ended else { return }
        deframer.append(bytes)
        do {
            while let message = try deframer.next() { onMessage(message) }
        } catch {
            end(error.status)
        }
    }

    public func writeEnd(trailers: [HeaderField]) {
        end(Self.status(in: trailers))
    }

    public func reset() {
        end(GRPCStatus(.internal, "the in-process call was reset"))
    }

    private func end(_ status: GRPCStatus) {
        guard !ended else { return }
        ended = true
        onEnd(status)
    }

    private static func status(in fields: [HeaderField]) -> GRPCStatus {
        var code = GRPCStatus.Code.unknown
        var message = ""
        for field in fields {
            switch field.name {
            case "grpc-status": code = Int(field.value).map(GRPCStatus.Code.init(rawValue:)) ?? .unknown
            case "grpc-message": message = GRPCMessageEncoding.decode(field.value)
            default: break
            }
        }
        return GRPCStatus(code, message)
    }
}
