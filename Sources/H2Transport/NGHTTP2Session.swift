import CNghttp2
import NIOCore
import RPCCore

/// An error code returned by nghttp2, with its library description.
struct NGHTTP2Error: Error, CustomStringConvertible {
    let code: Int

    var description: String {
        "nghttp2 error \(code): \(String(cString: nghttp2_strerror(Int32(code))))"
    }
}

/// What the session reports to its owner. Called synchronously from inside `receive` and
/// `drainOutput`, on the owner's event loop.
protocol NGHTTP2SessionDelegate: AnyObject {
    /// A header block began: a request head (`isRequest`) or a client's trailers. It is
    /// complete when `sessionReceivedFrame` reports its HEADERS frame.
    func sessionBeganHeaderBlock(streamID: Int32, isRequest: Bool)
    /// One request header; return `false` to reset the stream (e.g. header list too large).
    func sessionReceivedHeader(streamID: Int32, name: String, value: String) -> Bool
    func sessionReceivedRequestHead(streamID: Int32, endStream: Bool)
    func sessionReceivedData(streamID: Int32, bytes: ByteBuffer)
    func sessionReceivedEndStream(streamID: Int32)
    /// Any complete frame from the peer (after the callbacks specific to it).
    func sessionReceivedFrame(_ frame: NGHTTP2Session.ReceivedFrame)
    func sessionClosedStream(streamID: Int32, errorCode: UInt32)
    /// nghttp2 queued RST_STREAM for a stream error of the client (an invalid frame), or will
    /// because a header callback refused a field.
    func sessionQueuedReset(streamID: Int32)
    /// The next response body bytes of a stream, at most `maxLength`; see `BodyRead`.
    func sessionReadBody(streamID: Int32, maxLength: Int) -> NGHTTP2Session.BodyRead
}

/// Owns one nghttp2 server session: the HTTP/2 protocol state of one connection.
///
/// nghttp2 is not thread-safe, so the session is used from its connection's event loop only.
/// The C callbacks get back to this object through `user_data` (unretained: the connection
/// handler owns the session and outlives every call into it) and only forward to the
/// delegate; all unsafe pointer handling of the transport stays in this file.
final class NGHTTP2Session {
    struct Settings {
        var maxConcurrentStreams: UInt32
        var initialWindowSize: UInt32
        var maxHeaderListSize: UInt32
        var maxFrameSize: UInt32 = 16_384
    }

    /// What the connection learns of each frame received.
    struct ReceivedFrame {
        enum Kind { case settings, headers, data, other }
        var kind: Kind
        var streamID: Int32
        /// Frame payload length, padding included.
        var length: Int
        var endStream: Bool
    }

    /// Result of asking the delegate for response body bytes.
    enum BodyRead {
        /// Body bytes; more may follow.
        case bytes(ByteBuffer)
        /// Nothing queued yet: nghttp2 parks the stream until `resumeData`.
        case deferred
        /// The final body bytes (possibly none); the response ends, with `trailers` if not empty.
        case end(ByteBuffer, trailers: [HeaderField])
    }

    // Implicitly unwrapped because `user_data` must point at self while the session is created.
    private var session: OpaquePointer!
    private unowned let delegate: any NGHTTP2SessionDelegate
    private let allocator = ByteBufferAllocator()

    init(settings: Settings, delegate: any NGHTTP2SessionDelegate) throws {
        self.delegate = delegate
        var callbacks: OpaquePointer?
        try Self.check(nghttp2_session_callbacks_new(&callbacks))
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.install(callbacks)

        var option: OpaquePointer?
        try Self.check(nghttp2_option_new(&option))
        defer { nghttp2_option_del(option) }
        // Rapid reset (CVE-2023-44487): past a burst of 1000 client resets, 33 per second;
        // then nghttp2 ends the session with GOAWAY ENHANCE_YOUR_CALM.
        nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)
        // CONTINUATION flood (CVE-2024-28182): a header block of more than 8 CONTINUATION
        // frames is a connection error.
        nghttp2_option_set_max_continuations(option, 8)
        // At most 32 entries per SETTINGS frame (more is a connection error).
        nghttp2_option_set_max_settings(option, 32)
        // SETTINGS and PING ACKs nghttp2 has queued for a peer that does not read them: past
        // 1000, receiving fails with NGHTTP2_ERR_FLOODED and the connection is closed. A peer
        // that reads its ACKs costs CPU only: the queue stays short.
        nghttp2_option_set_max_outbound_ack(option, 1000)
        // Flow control windows reopen only when the connection has handed the bytes on
        // (`consume`), not as soon as nghttp2 parsed them.
        nghttp2_option_set_no_auto_window_update(option, 1)

        var created: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        try Self.check(nghttp2_session_server_new2(&created, callbacks, userData, option))
        session = created

        let entries: [(Int32, UInt32)] = [
            (Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), settings.maxConcurrentStreams),
            (Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), settings.initialWindowSize),
            (Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), settings.maxHeaderListSize),
            (Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), settings.maxFrameSize),
        ]
        let iv = entries.map { nghttp2_settings_entry(settings_id: $0.0, value: $0.1) }
        try Self.check(nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), iv, iv.count))
        // The connection window starts at 64 KiB whatever SETTINGS say; widen it alike.
        try Self.check(
            nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.initialWindowSize)))
    }

    deinit {
        nghttp2_session_del(session)
    }

    /// Feeds received bytes to the protocol engine; callbacks run before this returns.
    func receive(_ buffer: ByteBuffer) throws {
        let result = buffer.withUnsafeReadableBytes { bytes in
            nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        if result < 0 { throw NGHTTP2Error(code: result) }
    }

    /// Appends every frame nghttp2 has ready to `output`, up to `limit` bytes.
    func drainOutput(into output: inout ByteBuffer, limit: Int) throws {
        while output.readableBytes < limit {
            var chunk: UnsafePointer<UInt8>?
            let length = nghttp2_session_mem_send(session, &chunk)
            if length < 0 { throw NGHTTP2Error(code: length) }
            guard length > 0, let chunk else { return }
            output.writeBytes(UnsafeRawBufferPointer(start: chunk, count: length))
        }
    }

    /// Whether the connection still has work: `false` once both peers are done (after GOAWAY
    /// with no open streams, or a fatal protocol error).
    var isAlive: Bool {
        nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0
    }

    /// Queues response headers; a body, if any, comes from the delegate's `sessionReadBody`.
    func submitResponse(streamID: Int32, status: Int, headers: [HeaderField], hasBody: Bool) throws {
        let result = Self.withNameValues(headers, status: status) { nva in
            if hasBody {
                var provider = nghttp2_data_provider()
                provider.read_callback = readBodyCallback
                return nghttp2_submit_response(session, streamID, nva.baseAddress, nva.count, &provider)
            }
            return nghttp2_submit_response(session, streamID, nva.baseAddress, nva.count, nil)
        }
        try Self.check(result)
    }

    /// Returns `length` request body bytes of `streamID` to the peer's send windows (stream
    /// and connection), once the connection has handed them on.
    func consume(streamID: Int32, length: Int) {
        // Fails only for a stream already closed; the connection window is then returned alone.
        if nghttp2_session_consume(session, streamID, length) != 0 {
            _ = nghttp2_session_consume_connection(session, length)
        }
    }

    /// Wakes a stream whose body read was deferred.
    func resumeData(streamID: Int32) {
        // Fails only when the stream is gone or not deferred: nothing to wake then.
        _ = nghttp2_session_resume_data(session, streamID)
    }

    func resetStream(streamID: Int32, errorCode: UInt32) {
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// First step of a graceful shutdown: tells the client to open no new streams, while
    /// streams it may already have in flight are still accepted.
    func submitShutdownNotice() {
        _ = nghttp2_submit_shutdown_notice(session)
    }

    /// Final GOAWAY: streams above the last one processed are refused. `errorCode` 0 is
    /// NO_ERROR; `enhanceYourCalm` (0xb) tells an abusive peer why it is cut off.
    func submitGoAway(errorCode: UInt32 = 0) {
        let lastStreamID = nghttp2_session_get_last_proc_stream_id(session)
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStreamID, errorCode, nil, 0)
    }

    static let noError = UInt32(NGHTTP2_NO_ERROR.rawValue)
    static let internalError = UInt32(NGHTTP2_INTERNAL_ERROR.rawValue)
    static let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
    static let enhanceYourCalm = UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)

    // MARK: - Callbacks into the delegate

    fileprivate func readBody(streamID: Int32, buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let destination = UnsafeMutableRawBufferPointer(start: buffer, count: length)
        switch delegate.sessionReadBody(streamID: streamID, maxLength: length) {
        case .bytes(let bytes):
            return bytes.withUnsafeReadableBytes { destination.copyBytes(from: $0) ; return $0.count }
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .end(let bytes, let trailers):
            let count = bytes.withUnsafeReadableBytes { destination.copyBytes(from: $0) ; return $0.count }
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if !trailers.isEmpty {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                let result = Self.withNameValues(trailers) { nva in
                    nghttp2_submit_trailer(session, streamID, nva.baseAddress, nva.count)
                }
                if result != 0 { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
            }
            return count
        }
    }

    fileprivate func receivedData(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        delegate.sessionReceivedData(streamID: streamID, bytes: buffer)
    }

    // MARK: - Helpers

    private static func check(_ code: Int32) throws {
        if code != 0 { throw NGHTTP2Error(code: Int(code)) }
    }

    private static let statusField = Array(":status".utf8)

    /// Lays `:status` (when given) and the fields out in one stack buffer and calls `body` with
    /// name/value records pointing into it (nghttp2 copies them before returning), so that
    /// submitting a response allocates nothing on the heap.
    private static func withNameValues(
        _ fields: [HeaderField], status: Int? = nil, _ body: (UnsafeBufferPointer<nghttp2_nv>) -> Int32
    ) -> Int32 {
        let statusText = status.map(String.init)
        var byteCount = (statusText?.utf8.count ?? 0) + statusField.count
        for field in fields { byteCount += field.name.utf8.count + field.value.utf8.count }
        let count = fields.count + (status == nil ? 0 : 1)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: byteCount) { bytes in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: count) { nva in
                var offset = 0, index = 0
                func add(_ name: some Collection<UInt8>, _ value: some Collection<UInt8>) {
                    let base = bytes.baseAddress! + offset
                    let nameEnd = UnsafeMutableBufferPointer(start: base, count: name.count).initialize(from: name).1
                    let valueBase = base + nameEnd
                    let valueEnd = UnsafeMutableBufferPointer(start: valueBase, count: value.count).initialize(from: value).1
                    nva.initializeElement(
                        at: index,
                        to: nghttp2_nv(
                            name: base, value: valueBase, namelen: nameEnd, valuelen: valueEnd,
                            flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
                    offset += nameEnd + valueEnd
                    index += 1
                }
                if let statusText { add(statusField, statusText.utf8) }
                for field in fields { add(field.name.utf8, field.value.utf8) }
                return body(UnsafeBufferPointer(start: nva.baseAddress, count: count))
            }
        }
    }

    private static func install(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame, let userData else { return 0 }
            if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) {
                NGHTTP2Session.from(userData).delegate.sessionBeganHeaderBlock(
                    streamID: frame.pointee.hd.stream_id, isRequest: frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST)
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            guard let frame, let name, let value, let userData else { return 0 }
            // Trailers sent by a client carry nothing this server reads.
            guard frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
            let delegate = NGHTTP2Session.from(userData).delegate
            let accepted = delegate.sessionReceivedHeader(
                streamID: frame.pointee.hd.stream_id,
                name: String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                value: String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self))
            if accepted { return 0 }
            // nghttp2 answers TEMPORAL_CALLBACK_FAILURE with RST_STREAM INTERNAL_ERROR.
            delegate.sessionQueuedReset(streamID: frame.pointee.hd.stream_id)
            return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame, let userData else { return 0 }
            let delegate = NGHTTP2Session.from(userData).delegate
            let streamID = frame.pointee.hd.stream_id
            let endStream = frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            let kind: ReceivedFrame.Kind
            switch UInt32(frame.pointee.hd.type) {
            case NGHTTP2_HEADERS.rawValue:
                kind = .headers
                if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                    delegate.sessionReceivedRequestHead(streamID: streamID, endStream: endStream)
                } else if endStream {
                    delegate.sessionReceivedEndStream(streamID: streamID)
                }
            case NGHTTP2_DATA.rawValue:
                kind = .data
                if endStream { delegate.sessionReceivedEndStream(streamID: streamID) }
            case NGHTTP2_SETTINGS.rawValue where frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0:
                kind = .settings
            default:
                kind = .other
            }
            delegate.sessionReceivedFrame(
                ReceivedFrame(kind: kind, streamID: streamID, length: frame.pointee.hd.length, endStream: endStream))
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            guard let data, let userData else { return 0 }
            NGHTTP2Session.from(userData).receivedData(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks) { _, frame, _, userData in
            // A stream error: nghttp2 queues RST_STREAM for it. (Connection errors, stream 0, end
            // the session instead.)
            guard let frame, let userData, frame.pointee.hd.stream_id != 0 else { return 0 }
            NGHTTP2Session.from(userData).delegate.sessionQueuedReset(streamID: frame.pointee.hd.stream_id)
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            guard let userData else { return 0 }
            NGHTTP2Session.from(userData).delegate.sessionClosedStream(streamID: streamID, errorCode: errorCode)
            return 0
        }
    }

    private static func from(_ userData: UnsafeMutableRawPointer) -> NGHTTP2Session {
        Unmanaged<NGHTTP2Session>.fromOpaque(userData).takeUnretainedValue()
    }
}

/// The body read callback of every response's data provider.
private func readBodyCallback(
    _ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ userData: UnsafeMutableRawPointer?
) -> Int {
    guard let buffer, let flags, let userData else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    return Unmanaged<NGHTTP2Session>.fromOpaque(userData).takeUnretainedValue()
        .readBody(streamID: streamID, buffer: buffer, length: length, flags: flags)
}
