import NIOCore
import RPCCore

/// One HTTP/2 stream of a connection: the request head being collected, the handler that
/// answers it, and the queue of response body bytes that nghttp2's data provider reads.
///
/// Confined to the connection's event loop. After `isClosed` every write is ignored.
final class H2Stream: HTTPStreamWriter {
    let streamID: Int32
    private unowned let connection: H2ConnectionHandler
    var handler: (any HTTPStreamHandler)?
    /// Request headers until the head is complete, then released.
    var requestFields: [HeaderField] = []
    /// Header list size as RFC 9113 counts it (name + value + 32 per field).
    var requestHeaderListSize = 0
    private(set) var isClosed = false

    /// Response body not yet handed to nghttp2. The first write is kept as it is (no copy);
    /// later ones are appended, so a stream costs no queue allocation.
    private var pendingBody: ByteBuffer?
    var queuedBodyBytes: Int { pendingBody?.readableBytes ?? 0 }
    private var endRequested = false
    private var trailers: [HeaderField] = []
    /// The data provider returned DEFERRED and waits for `resumeData`.
    private var isParked = false
    private var hasBody = false

    /// Kept here rather than read through `connection`, which may be gone when a handler
    /// still holds this stream after its connection closed.
    let eventLoop: any EventLoop
    let peerAddress: String?

    init(streamID: Int32, connection: H2ConnectionHandler) {
        self.streamID = streamID
        self.connection = connection
        self.eventLoop = connection.eventLoop
        self.peerAddress = connection.peerAddress
    }

    func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        guard !isClosed else { return }
        hasBody = !endStream
        connection.submitResponse(streamID: streamID, status: status, headers: headers, hasBody: !endStream)
    }

    func writeBody(_ bytes: ByteBuffer) {
        guard !isClosed, hasBody, !endRequested, bytes.readableBytes > 0 else { return }
        if pendingBody == nil {
            pendingBody = bytes
        } else {
            var bytes = bytes
            pendingBody!.writeBuffer(&bytes)
        }
        wake()
    }

    func writeEnd(trailers: [HeaderField]) {
        guard !isClosed, hasBody, !endRequested else { return }
        endRequested = true
        self.trailers = trailers
        wake()
    }

    func reset() {
        guard !isClosed else { return }
        connection.resetStream(streamID: streamID)
    }

    /// Called by the connection when nghttp2 closed the stream.
    func markClosed() {
        isClosed = true
        pendingBody = nil
    }

    /// The next body bytes for nghttp2's DATA frames, at most `maxLength`.
    func readBody(maxLength: Int) -> NGHTTP2Session.BodyRead {
        var chunk = ByteBuffer()
        if var pending = pendingBody {
            chunk = pending.readSlice(length: min(pending.readableBytes, maxLength))!
            pendingBody = pending.readableBytes == 0 ? nil : pending
        }
        if pendingBody == nil {
            if chunk.readableBytes > 0 { connection.noteDrained(self) }
            if endRequested { return .end(chunk, trailers: trailers) }
            if chunk.readableBytes == 0 {
                isParked = true
                return .deferred
            }
        }
        return .bytes(chunk)
    }

    private func wake() {
        if isParked {
            isParked = false
            connection.resumeData(streamID: streamID)
        }
        connection.outboundChanged()
    }
}
