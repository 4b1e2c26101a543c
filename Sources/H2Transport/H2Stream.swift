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

    private var bodyQueue = CircularBuffer<ByteBuffer>()
    private(set) var queuedBodyBytes = 0
    private var endRequested = false
    private var trailers: [HeaderField] = []
    /// The data provider returned DEFERRED and waits for `resumeData`.
    private var isParked = false
    private var hasBody = false

    init(streamID: Int32, connection: H2ConnectionHandler) {
        self.streamID = streamID
        self.connection = connection
    }

    var eventLoop: any EventLoop { connection.eventLoop }

    func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        guard !isClosed else { return }
        hasBody = !endStream
        connection.submitResponse(streamID: streamID, status: status, headers: headers, hasBody: !endStream)
    }

    func writeBody(_ bytes: ByteBuffer) {
        guard !isClosed, hasBody, !endRequested, bytes.readableBytes > 0 else { return }
        bodyQueue.append(bytes)
        queuedBodyBytes += bytes.readableBytes
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
        bodyQueue.removeAll()
        queuedBodyBytes = 0
    }

    /// The next body bytes for nghttp2's DATA frames, at most `maxLength`.
    func readBody(maxLength: Int) -> NGHTTP2Session.BodyRead {
        var chunk = ByteBuffer()
        if var first = bodyQueue.first {
            // Frames are filled from one queued message at a time; the next read takes the next.
            chunk = first.readSlice(length: min(first.readableBytes, maxLength))!
            if first.readableBytes == 0 {
                bodyQueue.removeFirst()
            } else {
                bodyQueue[bodyQueue.startIndex] = first
            }
            queuedBodyBytes -= chunk.readableBytes
        }
        if bodyQueue.isEmpty {
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
