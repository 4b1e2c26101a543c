import CCurl

/// One request on its curl easy handle. Created by the caller, then touched only on the curl
/// thread (start, callbacks, completion), which is what makes the unchecked Sendable sound.
final class CurlTransfer: @unchecked Sendable {
    private let request: HTTPRequest
    private let continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var connectToList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    private var status = 0
    private var headers = HTTPHeaders()
    private var trailers = HTTPHeaders()
    private var headDelivered = false
    private var receivedBytes = 0
    private var exceededLimit = false

    init(request: HTTPRequest, continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation) {
        self.request = request
        self.continuation = continuation
        errorBuffer.initialize(to: 0)
    }

    deinit {
        if let easy { curl_easy_cleanup(easy) }
        curl_slist_free_all(headerList)
        curl_slist_free_all(connectToList)
        errorBuffer.deallocate()
    }

    /// Configures the easy handle and adds it to `multi`; `nil` (and the stream failed) when
    /// curl refuses it.
    func start(in multi: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else {
            fail(.transport("curl_easy_init failed"))
            return nil
        }
        self.easy = easy
        let context = Unmanaged.passUnretained(self).toOpaque()
        var code = CURLE_OK
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }

        set(swapline_curl_setopt_string(easy, CURLOPT_URL, request.url))
        set(swapline_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(swapline_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        set(swapline_curl_setopt_ptr(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        set(swapline_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout)))
        if let total = request.totalTimeout {
            set(swapline_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Self.milliseconds(total)))
        }
        switch request.version {
        case .negotiated:
            set(swapline_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS)))
        case .http2PriorKnowledge:
            set(swapline_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)))
            // libcurl 7.88.1 fails every later stream on a reused or shared h2c prior-knowledge
            // connection with CURLE_HTTP2 (reproducible with the curl CLI against nghttpd), so
            // each such call gets a connection of its own. Over TLS, where ALPN negotiates
            // HTTP/2, connections are reused and shared.
            if !request.url.lowercased().hasPrefix("https:") {
                set(swapline_curl_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1))
                set(swapline_curl_setopt_long(easy, CURLOPT_FORBID_REUSE, 1))
            }
        }
        if let caFile = request.caFile {
            // Only these authorities: no CA directory built into libcurl besides them.
            set(swapline_curl_setopt_string(easy, CURLOPT_CAINFO, caFile))
            set(swapline_curl_setopt_string(easy, CURLOPT_CAPATH, nil))
        }
        if let connectTo = request.connectTo {
            connectToList = curl_slist_append(nil, "::\(connectTo)")
            set(swapline_curl_setopt_ptr(easy, CURLOPT_CONNECT_TO, connectToList))
        }
        switch request.method {
        case .get:
            set(swapline_curl_setopt_long(easy, CURLOPT_HTTPGET, 1))
        case .post:
            set(swapline_curl_setopt_long(easy, CURLOPT_POST, 1))
        case .put, .delete:
            set(swapline_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method.rawValue))
        }
        if request.method != .get {
            set(swapline_curl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            // COPYPOSTFIELDS lets curl own the bytes, so nothing here must outlive the call.
            request.body.withUnsafeBytes { bytes in
                set(swapline_curl_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(errorBuffer))))
            }
        }
        // An empty "Expect:" stops curl's 100-continue round trip on large HTTP/1.1 bodies.
        var lines = request.headers.map { "\($0.name): \($0.value)" }
        if request.method != .get { lines.append("Expect:") }
        for line in lines { headerList = curl_slist_append(headerList, line) }
        set(swapline_curl_setopt_ptr(easy, CURLOPT_HTTPHEADER, headerList))
        set(swapline_curl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, curlBodyCallback))
        set(swapline_curl_setopt_ptr(easy, CURLOPT_WRITEDATA, context))
        set(swapline_curl_setopt_callback(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback))
        set(swapline_curl_setopt_ptr(easy, CURLOPT_HEADERDATA, context))

        guard code == CURLE_OK else {
            fail(.transport("invalid request: \(String(cString: curl_easy_strerror(code)))"))
            return nil
        }
        guard curl_multi_add_handle(multi, easy) == CURLM_OK else {
            fail(.transport("curl_multi_add_handle failed"))
            return nil
        }
        return easy
    }

    /// One header line as curl delivers it: a status line, a field, or the empty line ending
    /// a header block. Fields after the final header block are trailers.
    fileprivate func receiveHeaderLine(_ raw: UnsafeRawBufferPointer) {
        var line = String(decoding: raw, as: UTF8.self)
        // Unicode scalars, because "\r\n" is a single Character.
        while let last = line.unicodeScalars.last, last == "\n" || last == "\r" { line.unicodeScalars.removeLast() }
        if line.hasPrefix("HTTP/") {
            // A new header block: an interim 1xx response or the final one.
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = HTTPHeaders()
            return
        }
        if line.isEmpty {
            if status >= 200 { deliverHead() }
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingWhitespace()
        if headDelivered {
            trailers.add(name: name, value: value)
        } else {
            headers.add(name: name, value: value)
        }
    }

    /// Returns false to make curl abort the transfer once the size limit is crossed.
    fileprivate func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        receivedBytes += bytes.count
        if receivedBytes > request.maxResponseBytes {
            exceededLimit = true
            return false
        }
        deliverHead()
        continuation.yield(.body(Array(bytes)))
        return true
    }

    private func deliverHead() {
        guard !headDelivered else { return }
        headDelivered = true
        continuation.yield(.head(HTTPResponseHead(status: status, headers: headers)))
    }

    /// Ends the stream with curl's result for the finished transfer.
    func complete(_ result: CURLcode) {
        let detail = errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(result))
        switch result {
        case CURLE_OK:
            if status == 0 {
                var code = 0
                swapline_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
                status = code
            }
            deliverHead()
            if !trailers.isEmpty { continuation.yield(.trailers(trailers)) }
            continuation.finish()
        case CURLE_WRITE_ERROR where exceededLimit:
            fail(.responseTooLarge(limit: request.maxResponseBytes))
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            fail(.couldNotConnect(detail))
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM:
            fail(.couldNotConnect("TLS: \(detail)"))
        case CURLE_OPERATION_TIMEDOUT:
            fail(.timedOut(detail))
        default:
            fail(.transport(detail))
        }
    }

    func fail(_ error: HTTPClientError) {
        continuation.finish(throwing: error)
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

private let curlBodyCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
}

private let curlHeaderCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
    return length
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
