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

    /// The request has not ended yet: its body is still expected (see `lastReceivedAt`).
    var awaitsRequestBody = true
    /// When a request byte last arrived (or the head), for the body progress timeout.
    var lastReceivedAt: NIODeadline
    /// The connection gave up on the request; the stream is reset once the response ends.
    var requestAbandoned = false
    /// The final frame of the response is queued in nghttp2 (or already sent).
    private(set) var responseEndQueued = false
    /// Since when queued response bytes have waited without any being taken, for the send
    /// progress timeout; `nil` while nothing waits.
    private(set) var sendWaitingSince: NIODeadline?

    /// Response body not yet handed to nghttp2. The first write is kept as it is (no copy);
    /// later ones are appended, so a stream costs no queue allocation.
    private var pendingBody: ByteBuffer?
    var queuedBodyBytes: Int { pendingBody?.readableBytes ?? 0 }
    private var endRequested = false
    private var trailers: [HeaderField] = []
    /// The handler ended the response; its end may still wait behind queued body bytes.
    var isEndingResponse: Bool { endRequested || responseEndQueued }
    /// The data provider returned DEFERRED and waits for `resumeData`.
    private var isParked = false
    private var hasBody = false

    /// Kept here rather than read through `connection`, which may be gone when a handler
    /// still holds this stream after its connection closed.
    let eventLoop: any EventLoop
    let connectionID: ConnectionID?
    let peerAddress: String?

    init(streamID: Int32, connection: H2ConnectionHandler) {
        self.streamID = streamID
        self.connection = connection
        self.eventLoop = connection.eventLoop
        self.lastReceivedAt = connection.eventLoop.now
        self.connectionID = connection.connectionID
        self.peerAddress = connection.peerAddress
    }

    func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        guard !isClosed else { return }
        hasBody = !endStream
        connection.submitResponse(streamID: streamID, status: status, headers: headers, hasBody: !endStream)
        if endStream { noteResponseEndQueued() }
    }

    func writeBody(_ bytes: ByteBuffer) {
        guard !isClosed, hasBody, !endRequested, bytes.readableBytes > 0 else { return }
        let count = bytes.readableBytes
        if pendingBody == nil {
            pendingBody = bytes
            sendWaitingSince = eventLoop.now
        } else {
            var bytes = bytes
            pendingBody!.writeBuffer(&bytes)
        }
        connection.queuedBodyBytesChanged(by: count, on: self)
        guard !isClosed else { return }  // over the bound: the connection reset the stream
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

    /// Called by the connection when nghttp2 closed the stream (or is about to reset it).
    func markClosed() {
        guard !isClosed else { return }
        isClosed = true
        let dropped = queuedBodyBytes
        pendingBody = nil
        sendWaitingSince = nil
        if dropped > 0 { connection.queuedBodyBytesChanged(by: -dropped, on: self) }
    }

    /// The next body bytes for nghttp2's DATA frames, at most `maxLength`.
    func readBody(maxLength: Int) -> NGHTTP2Session.BodyRead {
        var chunk = ByteBuffer()
        if var pending = pendingBody {
            chunk = pending.readSlice(length: min(pending.readableBytes, maxLength))!
            pendingBody = pending.readableBytes == 0 ? nil : pending
            sendWaitingSince = pendingBody == nil ? nil : eventLoop.now
            connection.queuedBodyBytesChanged(by: -chunk.readableBytes, on: self)
        }
        if pendingBody == nil {
            if chunk.readableBytes > 0 { connection.noteDrained(self) }
            if endRequested {
                noteResponseEndQueued()
                return .end(chunk, trailers: trailers)
            }
            if chunk.readableBytes == 0 {
                isParked = true
                return .deferred
            }
        }
        return .bytes(chunk)
    }

    private func noteResponseEndQueued() {
        responseEndQueued = true
        if requestAbandoned { connection.resetOnceResponseSent(self) }
    }

    private func wake() {
        if isParked {
            isParked = false
            connection.resumeData(streamID: streamID)
        }
        connection.outboundChanged()
    }
}
