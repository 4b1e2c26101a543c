import CCurl

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// One request on its curl easy handle. Created by the caller, then touched only on the curl
/// thread (start, callbacks, completion), which is what makes the unchecked Sendable sound.
final class CurlTransfer: @unchecked Sendable {
    private let request: HTTPRequest
    private let continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var connectToList: UnsafeMutablePointer<curl_slist>?
    /// CURLOPT_RESOLVE entries and the private DNS cache of a pinned request.
    private var resolveList: UnsafeMutablePointer<curl_slist>?
    private var dnsShare: OpaquePointer?
    /// The raw bytes (4 or 16) of the addresses a pinned request may connect to.
    private var pinnedPeers: Set<[UInt8]> = []
    /// Addresses curl tried that pinning refused, for the error.
    private var refusedPeers: [String] = []
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    /// The open body file of an upload and how many of its bytes are still to be sent.
    private var uploadFile: UnsafeMutablePointer<FILE>?
    private var uploadRemaining: Int64 = 0
    /// The MIME body of a multipart POST; curl reads its file part while sending.
    private var mime: OpaquePointer?

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
        // After the easy handle that used it, as curl_mime_free requires.
        if let mime { curl_mime_free(mime) }
        // Only once no easy handle uses it any more.
        if let dnsShare { curl_share_cleanup(UnsafeMutableRawPointer(dnsShare)) }
        curl_slist_free_all(resolveList)
        curl_slist_free_all(headerList)
        curl_slist_free_all(connectToList)
        if let uploadFile { fclose(uploadFile) }
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
        if let part = request.multipartFile {
            guard request.method == .post, attachMultipart(part, easy: easy, set: set) else {
                fail(.transport("cannot read the multipart file \(part.path) (\(request.method.rawValue))"))
                return nil
            }
        } else if let slice = request.bodyFile {
            guard request.method == .put, let file = fopen(slice.path, "rb"), fseeko(file, off_t(slice.offset), SEEK_SET) == 0 else {
                fail(.transport("cannot read the body file \(slice.path) (\(request.method.rawValue))"))
                return nil
            }
            uploadFile = file
            uploadRemaining = slice.length
            set(swapline_curl_setopt_long(easy, CURLOPT_UPLOAD, 1))
            set(swapline_curl_setopt_off(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(slice.length)))
            set(swapline_curl_setopt_callback(easy, CURLOPT_READFUNCTION, curlReadCallback))
            set(swapline_curl_setopt_ptr(easy, CURLOPT_READDATA, context))
        } else if request.method != .get {
            set(swapline_curl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            // COPYPOSTFIELDS lets curl own the bytes, so nothing here must outlive the call.
            request.body.withUnsafeBytes { bytes in
                set(swapline_curl_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(errorBuffer))))
            }
        }
        // An empty "Expect:" stops curl's 100-continue round trip on large HTTP/1.1 bodies. Not
        // on SigV4-signed requests: libcurl 7.88 signs that empty header, which it then does not
        // send, so the store's signature would differ (and S3 answers 100-continue anyway).
        var lines = request.headers.map { "\($0.name): \($0.value)" }
        if request.method != .get, request.awsSigV4 == nil { lines.append("Expect:") }
        for line in lines { headerList = curl_slist_append(headerList, line) }
        set(swapline_curl_setopt_ptr(easy, CURLOPT_HTTPHEADER, headerList))
        set(swapline_curl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, curlBodyCallback))
        set(swapline_curl_setopt_ptr(easy, CURLOPT_WRITEDATA, context))
        set(swapline_curl_setopt_callback(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback))
        set(swapline_curl_setopt_ptr(easy, CURLOPT_HEADERDATA, context))
        switch request.proxy {
        case .fromEnvironment: break
        case .none: set(swapline_curl_setopt_string(easy, CURLOPT_PROXY, ""))
        case .url(let proxy): set(swapline_curl_setopt_string(easy, CURLOPT_PROXY, proxy))
        }
        if let limit = request.lowSpeedLimit {
            set(swapline_curl_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, max(1, limit.bytesPerSecond)))
            set(swapline_curl_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Self.milliseconds(limit.duration) / 1000)))
        }
        if let signing = request.awsSigV4 {
            set(swapline_curl_setopt_string(easy, CURLOPT_AWS_SIGV4, signing.parameters))
            set(swapline_curl_setopt_string(easy, CURLOPT_USERNAME, signing.accessKeyID))
            set(swapline_curl_setopt_string(easy, CURLOPT_PASSWORD, signing.secretAccessKey))
        }
        if let pinning = request.pinning {
            guard pin(pinning, easy: easy, context: context, set: set) else { return nil }
        }

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

    /// Builds the one-part MIME body of `part` and sets it as the POST body; false when the
    /// file cannot be opened or curl refuses the part.
    private func attachMultipart(_ part: MultipartFile, easy: UnsafeMutableRawPointer, set: (CURLcode) -> Void) -> Bool {
        guard let mime = curl_mime_init(easy) else { return false }
        self.mime = mime
        guard let field = curl_mime_addpart(mime), curl_mime_name(field, part.fieldName) == CURLE_OK,
            curl_mime_filedata(field, part.path) == CURLE_OK, curl_mime_filename(field, part.fileName) == CURLE_OK,
            curl_mime_type(field, part.contentType) == CURLE_OK
        else { return false }
        set(swapline_curl_setopt_ptr(easy, CURLOPT_MIMEPOST, UnsafeMutableRawPointer(mime)))
        return true
    }

    /// Sets up address pinning (see `AddressPinning`); false (and the stream failed) when the
    /// pinning itself is unusable.
    private func pin(
        _ pinning: AddressPinning, easy: UnsafeMutableRawPointer, context: UnsafeMutableRawPointer, set: (CURLcode) -> Void
    ) -> Bool {
        let peers = pinning.addresses.compactMap(Self.addressBytes)
        guard !peers.isEmpty, peers.count == pinning.addresses.count else {
            fail(.transport("invalid pinned addresses \(pinning.addresses)"))
            return false
        }
        if case .url = request.proxy {
            fail(.transport("a pinned request cannot go through a proxy"))
            return false
        }
        pinnedPeers = Set(peers)
        // An environment proxy would be the peer, and refused: pinned requests go direct.
        set(swapline_curl_setopt_string(easy, CURLOPT_PROXY, ""))
        guard let share = swapline_curl_share_dns() else {
            fail(.transport("curl_share_init failed"))
            return false
        }
        dnsShare = OpaquePointer(share)
        set(swapline_curl_setopt_ptr(easy, CURLOPT_SHARE, share))
        if Self.addressBytes(pinning.host) == nil {
            let addresses = pinning.addresses.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
            resolveList = curl_slist_append(nil, "\(pinning.host):\(pinning.port):\(addresses)")
            set(swapline_curl_setopt_ptr(easy, CURLOPT_RESOLVE, resolveList))
        }
        set(swapline_curl_setopt_opensocket(easy, curlOpenSocketCallback))
        set(swapline_curl_setopt_ptr(easy, CURLOPT_OPENSOCKETDATA, context))
        return true
    }

    /// Called by curl for every socket it opens: admits only the pinned addresses.
    fileprivate func admits(_ address: UnsafeMutablePointer<curl_sockaddr>) -> Bool {
        var bytes = [UInt8](repeating: 0, count: 16)
        let length = Int(swapline_curl_sockaddr_ip(address, &bytes))
        let peer = Array(bytes.prefix(length))
        if length > 0, pinnedPeers.contains(peer) { return true }
        refusedPeers.append(
            length == 4
                ? peer.map(String.init).joined(separator: ".")
                : stride(from: 0, to: length, by: 2).map { String(UInt16(peer[$0]) << 8 | UInt16(peer[$0 + 1]), radix: 16) }
                    .joined(separator: ":"))
        return false
    }

    /// The 4 or 16 bytes of a numeric address; nil for anything else.
    private static func addressBytes(_ text: String) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: 16)
        let length = Int(swapline_parse_ip(text, &bytes))
        return length == 0 ? nil : Array(bytes.prefix(length))
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

    /// Fills curl's upload buffer from the body file; 0 at its end. A file that ends early
    /// aborts the transfer rather than sending fewer bytes than announced.
    fileprivate func sendBody(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let uploadFile, uploadRemaining > 0 else { return 0 }
        let wanted = Int(min(Int64(buffer.count), uploadRemaining))
        let read = fread(buffer.baseAddress, 1, wanted, uploadFile)
        guard read > 0 else { return Int(CURL_READFUNC_ABORT) }
        uploadRemaining -= Int64(read)
        return read
    }

    private func deliverHead() {
        guard !headDelivered else { return }
        headDelivered = true
        continuation.yield(.head(HTTPResponseHead(status: status, headers: headers)))
    }

    /// Ends the stream with curl's result for the finished transfer.
    func complete(_ result: CURLcode) {
        let detail = errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(result))
        if result != CURLE_OK, !refusedPeers.isEmpty {
            return fail(.refusedAddress("\(refusedPeers.joined(separator: ", ")) is not among the checked addresses"))
        }
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

private let curlReadCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    return transfer.sendBody(into: UnsafeMutableRawBufferPointer(start: data, count: size * count))
}

private let curlOpenSocketCallback: curl_opensocket_callback = { context, _, address in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
    guard let address, transfer.admits(address) else { return CURL_SOCKET_BAD }
    return swapline_curl_open_socket(address)
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
