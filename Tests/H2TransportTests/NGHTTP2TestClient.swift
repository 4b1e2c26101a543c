import CNghttp2
import NIOCore

/// A deterministic HTTP/2 client for tests: a real nghttp2 client session whose bytes the test
/// carries to and from the server's channel by hand (no sockets).
final class NGHTTP2TestClient {
    struct Response {
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        var trailers: [(String, String)] = []
        var closedWithError: UInt32?
        var isClosed = false

        var status: String? { headers.first { $0.0 == ":status" }?.1 }
        var grpcStatus: String? { (trailers.isEmpty ? headers : trailers).first { $0.0 == "grpc-status" }?.1 }
    }

    private var session: OpaquePointer!
    private(set) var responses: [Int32: Response] = [:]
    private var pendingBodies: [Int32: [UInt8]] = [:]
    /// Streams whose request stays open after its body (no END_STREAM).
    private var unendedStreams: Set<Int32> = []
    private(set) var receivedGoAway = false
    private(set) var goAwayErrorCode: UInt32?

    init(initialWindowSize: UInt32 = 65_535) {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            let client = Unmanaged<NGHTTP2TestClient>.fromOpaque(userData!).takeUnretainedValue()
            let field = (
                String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
            )
            let id = frame!.pointee.hd.stream_id
            if frame!.pointee.headers.cat == NGHTTP2_HCAT_HEADERS, client.responses[id]?.headers.isEmpty == false {
                client.responses[id, default: Response()].trailers.append(field)
            } else {
                client.responses[id, default: Response()].headers.append(field)
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, id, data, length, userData in
            let client = Unmanaged<NGHTTP2TestClient>.fromOpaque(userData!).takeUnretainedValue()
            client.responses[id, default: Response()].body.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, id, errorCode, userData in
            let client = Unmanaged<NGHTTP2TestClient>.fromOpaque(userData!).takeUnretainedValue()
            client.responses[id, default: Response()].isClosed = true
            if errorCode != 0 { client.responses[id, default: Response()].closedWithError = errorCode }
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            let client = Unmanaged<NGHTTP2TestClient>.fromOpaque(userData!).takeUnretainedValue()
            if frame!.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) {
                client.receivedGoAway = true
                client.goAwayErrorCode = frame!.pointee.goaway.error_code
            }
            return 0
        }
        var created: OpaquePointer?
        nghttp2_session_client_new(&created, callbacks, Unmanaged.passUnretained(self).toOpaque())
        session = created
        let settings = [nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: initialWindowSize)]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), settings, settings.count)
    }

    deinit { nghttp2_session_del(session) }

    /// Starts a POST with `headers` and `body`, sent with END_STREAM unless `endStream` is
    /// false (the request then stays open, as from a client that stalls); returns the stream id.
    @discardableResult
    func post(
        path: String, contentType: String = "application/grpc", extraHeaders: [(String, String)] = [], body: [UInt8],
        endStream: Bool = true
    ) -> Int32 {
        let fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"), ("content-type", contentType), ("te", "trailers")]
            + extraHeaders
        var storage: [UInt8] = fields.flatMap { Array($0.0.utf8) + Array($0.1.utf8) }
        var provider = nghttp2_data_provider()
        provider.read_callback = { _, id, buffer, length, flags, _, userData in
            let client = Unmanaged<NGHTTP2TestClient>.fromOpaque(userData!).takeUnretainedValue()
            let pending = client.pendingBodies[id] ?? []
            let count = min(length, pending.count)
            pending.withUnsafeBufferPointer { buffer!.update(from: $0.baseAddress!, count: count) }
            client.pendingBodies[id] = Array(pending.dropFirst(count))
            if client.pendingBodies[id]!.isEmpty {
                if client.unendedStreams.contains(id) { return count > 0 ? count : Int(NGHTTP2_ERR_DEFERRED.rawValue) }
                flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            }
            return count
        }
        // nghttp2 copies names and values inside submit_request, so the storage may go after.
        let id = storage.withUnsafeMutableBufferPointer { bytes in
            var offset = 0
            let nva = fields.map { name, value in
                let base = bytes.baseAddress! + offset
                offset += name.utf8.count + value.utf8.count
                return nghttp2_nv(name: base, value: base + name.utf8.count, namelen: name.utf8.count, valuelen: value.utf8.count, flags: 0)
            }
            return nghttp2_submit_request(session, nil, nva, nva.count, &provider, nil)
        }
        pendingBodies[id] = body
        if !endStream { unendedStreams.insert(id) }
        return id
    }

    func reset(streamID: Int32) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, 8)  // CANCEL
    }

    /// Bytes the client wants to send.
    func outbound() -> ByteBuffer {
        var buffer = ByteBuffer()
        while true {
            var chunk: UnsafePointer<UInt8>?
            let length = nghttp2_session_mem_send(session, &chunk)
            guard length > 0, let chunk else { break }
            buffer.writeBytes(UnsafeRawBufferPointer(start: chunk, count: length))
        }
        return buffer
    }

    func receive(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            _ = nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
    }
}
