import CurlHTTP
import Foundation

/// Results in an S3-compatible bucket (AWS S3, Cloudflare R2, GCS's XML API, MinIO, ...).
///
/// Every request is signed by libcurl (CURLOPT_AWS_SIGV4) with `x-amz-content-sha256` set to
/// the payload's SHA-256, so the signature covers the body, and carries `Content-MD5`, so the
/// store refuses bytes that changed on the way. Files are read from disk while they are sent.
/// Files above the multipart threshold go up in parts, several at once; a multipart upload that
/// fails is aborted so no parts linger in the bucket.
public struct S3ResultStorage: ResultStorage {
    public let location: S3Location
    public let settings: S3Settings
    let http: CurlHTTPClient
    public var providerName: String { "s3" }

    public init(location: S3Location, settings: S3Settings, http: CurlHTTPClient) {
        self.location = location
        self.settings = settings
        self.http = http
    }

    public func store(_ file: OutputFile, taskID: String) async throws(StorageFailure) -> String {
        try await store(file, key: location.key(taskID: taskID, unguessable: UnguessableKey.make(), format: file.format))
    }

    /// Stores `file` as object `key`; its URL.
    func store(_ file: OutputFile, key: String) async throws(StorageFailure) -> String {
        if file.size > settings.multipartThreshold {
            try await uploadInParts(file, key: key)
        } else {
            try await uploadWhole(file, key: key)
        }
        return resultURL(key: key)
    }

    public func delete(url: String) async throws(StorageFailure) -> Bool {
        guard let key = key(of: url) else { return false }
        _ = try await send(.delete, key: key, query: "", body: .bytes([]), digests: PayloadDigests.of([]), contentType: nil, what: "DELETE of the object")
        return true
    }

    /// The key of an object this storage published at `url` (public or presigned), under its
    /// prefix; nil for any other URL.
    func key(of url: String) -> String? {
        let withoutQuery = String(url.prefix { $0 != "?" })
        let base = settings.publicURL.map { "\($0)/" } ?? settings.objectURL(bucket: location.bucket, key: "").url
        guard withoutQuery.hasPrefix(base), let key = withoutQuery.dropFirst(base.count).removingPercentEncoding,
            location.prefix.isEmpty || key.hasPrefix(location.prefix + "/"), !key.isEmpty
        else { return nil }
        return key
    }

    /// The public URL of `key` when a public base URL is configured, a presigned GET otherwise.
    func resultURL(key: String, now: Date = Date()) -> String {
        if let publicURL = settings.publicURL { return "\(publicURL)/\(SigV4.encode(key, keepSlash: true))" }
        let object = settings.objectURL(bucket: location.bucket, key: key)
        let scheme = object.url.prefix { $0 != ":" }
        return SigV4.presign(
            scheme: String(scheme), host: object.host, path: object.path, region: settings.region, credentials: settings.credentials,
            date: now, expires: settings.presignExpiry)
    }

    private func uploadWhole(_ file: OutputFile, key: String) async throws(StorageFailure) {
        let digests = try await digests(of: file, offset: 0, length: file.size)
        _ = try await send(
            .put, key: key, query: "", body: .file(FileSlice(path: file.path, length: file.size)), digests: digests,
            contentType: file.contentType, what: "PUT of the object")
    }

    private func uploadInParts(_ file: OutputFile, key: String) async throws(StorageFailure) {
        let created = try await send(
            .post, key: key, query: "uploads=", body: .bytes([]), digests: PayloadDigests.of([]), contentType: file.contentType,
            what: "creating the multipart upload")
        guard let uploadID = S3XML.firstValue(of: "UploadId", in: created.body), !uploadID.isEmpty else {
            throw StorageFailure(provider: providerName, reason: "creating the multipart upload: no UploadId in the answer")
        }
        let uploadQuery = "uploadId=\(SigV4.encode(uploadID))"
        do throws(StorageFailure) {
            let etags = try await uploadParts(of: file, key: key, uploadQuery: uploadQuery)
            let manifest = Array(Self.completionManifest(etags: etags).utf8)
            let completed = try await send(
                .post, key: key, query: uploadQuery, body: .bytes(manifest), digests: PayloadDigests.of(manifest),
                contentType: "application/xml", what: "completing the multipart upload")
            // CompleteMultipartUpload may answer 200 and still fail, with an <Error> body.
            if let error = S3ErrorBody.parse(completed.body) {
                throw StorageFailure(
                    provider: providerName, reason: "completing the multipart upload: HTTP 200 \(error.code)")
            }
        } catch {
            await abort(key: key, uploadQuery: uploadQuery)
            throw error
        }
    }

    /// Every part, `parallelParts` at a time; the ETags in part order.
    private func uploadParts(of file: OutputFile, key: String, uploadQuery: String) async throws(StorageFailure) -> [String] {
        let partSize = settings.partSize
        let count = Int((file.size + partSize - 1) / partSize)
        do {
            return try await withThrowingTaskGroup(of: (Int, String).self) { group in
                var etags = [String](repeating: "", count: count)
                var next = 0
                func addPart() {
                    let number = next + 1
                    let offset = Int64(next) * partSize
                    let length = min(partSize, file.size - offset)
                    next += 1
                    group.addTask {
                        let digests = try await digests(of: file, offset: offset, length: length)
                        let answer = try await send(
                            .put, key: key, query: "partNumber=\(number)&\(uploadQuery)",
                            body: .file(FileSlice(path: file.path, offset: offset, length: length)), digests: digests,
                            contentType: nil, what: "PUT of part \(number)")
                        guard let etag = answer.headers["etag"] else {
                            throw StorageFailure(provider: providerName, reason: "part \(number): no ETag in the answer")
                        }
                        return (number, etag)
                    }
                }
                while next < min(count, settings.parallelParts) { addPart() }
                while let (number, etag) = try await group.next() {
                    etags[number - 1] = etag
                    if next < count { addPart() }
                }
                return etags
            }
        } catch let failure as StorageFailure {
            throw failure
        } catch {
            throw StorageFailure(provider: providerName, reason: "multipart upload interrupted")
        }
    }

    static func completionManifest(etags: [String]) -> String {
        let parts = etags.enumerated().map { index, etag in
            "<Part><PartNumber>\(index + 1)</PartNumber><ETag>\(S3XML.escape(etag))</ETag></Part>"
        }
        return "<CompleteMultipartUpload>\(parts.joined())</CompleteMultipartUpload>"
    }

    /// Best effort: a store that stays unreachable expires the parts by its lifecycle rules.
    private func abort(key: String, uploadQuery: String) async {
        _ = try? await send(
            .delete, key: key, query: uploadQuery, body: .bytes([]), digests: PayloadDigests.of([]), contentType: nil,
            what: "aborting the multipart upload")
    }

    private func digests(of file: OutputFile, offset: Int64, length: Int64) async throws(StorageFailure) -> PayloadDigests {
        do {
            return try await PayloadDigests.of(path: file.path, offset: offset, length: length)
        } catch {
            throw StorageFailure(provider: providerName, reason: "could not read the output file")
        }
    }

    enum Body: Sendable {
        case bytes([UInt8])
        case file(FileSlice)
    }

    /// One signed request, tried again with backoff on transport failures, 5xx and throttling;
    /// the answer when it is a 2xx.
    func send(
        _ method: HTTPRequest.Method, key: String, query: String, body: Body, digests: PayloadDigests, contentType: String?,
        what: String
    ) async throws(StorageFailure) -> HTTPResponse {
        let object = settings.objectURL(bucket: location.bucket, key: key)
        var request = HTTPRequest(
            method: method, url: query.isEmpty ? object.url : "\(object.url)?\(query)", totalTimeout: settings.requestTimeout,
            maxResponseBytes: 1024 * 1024)
        var headers = HTTPHeaders([("x-amz-content-sha256", digests.sha256Hex), ("Content-MD5", digests.md5Base64)])
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        if let token = settings.credentials.sessionToken { headers.add(name: "x-amz-security-token", value: token) }
        request.headers = headers
        switch body {
        case .bytes(let bytes): request.body = bytes
        case .file(let slice): request.bodyFile = slice
        }
        request.awsSigV4 = AWSSigV4(
            parameters: "aws:amz:\(settings.region):s3", accessKeyID: settings.credentials.accessKeyID,
            secretAccessKey: settings.credentials.secretAccessKey)
        return try await StorageRequests.send(
            request, http: http, policy: settings.retry, provider: providerName, what: what, endpoint: "the endpoint",
            isAnswer: { (200..<300).contains($0.status) },
            judge: { Self.judge(status: $0.status, headers: $0.headers, body: $0.body) })
    }

    /// An S3 answer short of success: its HTTP status and the S3 error code; 5xx (503 SlowDown
    /// among them), 429 and S3's 400 RequestTimeout are worth another try.
    static func judge(status: Int, headers: HTTPHeaders, body: [UInt8]) -> StorageTryFailure {
        let error = S3ErrorBody.parse(body)
        return StorageTryFailure(
            summary: error.map { "HTTP \(status) \($0.code)" } ?? "HTTP \(status)",
            retryable: status >= 500 || status == 429 || error?.code == "RequestTimeout",
            retryAfter: StorageRequests.retryAfter(headers))
    }
}

/// The `<Error><Code>…</Code><Message>…</Message></Error>` body of an S3 error answer.
struct S3ErrorBody: Equatable {
    var code: String
    var message: String?

    static func parse(_ body: [UInt8]) -> S3ErrorBody? {
        guard body.count <= 64 * 1024 else { return nil }
        let text = String(decoding: body, as: UTF8.self)
        guard text.contains("<Error>"), let code = S3XML.firstValue(of: "Code", in: body), !code.isEmpty else { return nil }
        return S3ErrorBody(code: code, message: S3XML.firstValue(of: "Message", in: body))
    }
}

/// The little XML the S3 API answers with; S3 never nests the elements read here.
enum S3XML {
    /// The unescaped text of the first `<name>…</name>` in `body`.
    static func firstValue(of name: String, in body: [UInt8]) -> String? {
        let text = String(decoding: body, as: UTF8.self)
        guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex)
        else { return nil }
        return unescape(String(text[open.upperBound..<close.lowerBound]))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
