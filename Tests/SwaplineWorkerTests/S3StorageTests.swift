import CurlHTTP
import Foundation
import SwaplineTestKit
import Testing

@testable import SwaplineWorker

@Suite struct S3StorageTests {
    @Test func bucketAndPrefixParse() throws {
        #expect(try S3Location.parse("s3://my-bucket") == S3Location(bucket: "my-bucket", prefix: ""))
        #expect(try S3Location.parse("s3://my.bucket/a/b/") == S3Location(bucket: "my.bucket", prefix: "a/b"))
        #expect(try S3Location.parse("s3://b12//results") == S3Location(bucket: "b12", prefix: "results"))
        for bad in ["s3://", "s3://ab", "s3://Upper", "s3://-lead", "s3://under_score/x", "gs://bucket", "s3://\(String(repeating: "a", count: 64))"] {
            #expect(throws: StorageSpecError.self, "\(bad)") { try S3Location.parse(bad) }
        }
        #expect(S3Location(bucket: "b", prefix: "p/q").key(taskID: "t1", unguessable: "k", format: "jpg") == "p/q/t1/k/result.jpg")
        #expect(S3Location(bucket: "b", prefix: "").key(taskID: "t1", unguessable: "k", format: "gif") == "t1/k/result.gif")
    }

    @Test func objectURLsInBothStyles() {
        let credentials = AWSCredentials(accessKeyID: "a", secretAccessKey: "b")
        let virtual = S3Settings(region: "eu-west-1", credentials: credentials)
        #expect(virtual.objectURL(bucket: "b", key: "x y/r.jpg").url == "https://b.s3.eu-west-1.amazonaws.com/x%20y/r.jpg")
        let path = S3Settings(endpoint: "http://127.0.0.1:9000/", pathStyle: true, credentials: credentials)
        let object = path.objectURL(bucket: "b", key: "t/k/result.jpg")
        #expect(object.url == "http://127.0.0.1:9000/b/t/k/result.jpg")
        #expect(object.host == "127.0.0.1:9000" && object.path == "/b/t/k/result.jpg")
    }

    @Test func credentialsComeFromTheEnvironmentFirst() throws {
        let fromEnvironment = try AWSCredentials.load(environment: [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        ])
        #expect(fromEnvironment == AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: "token"))
        #expect(throws: CredentialsError.self) { try AWSCredentials.load(environment: ["AWS_ACCESS_KEY_ID": "AKID"]) }
        #expect(throws: CredentialsError.self) {
            try AWSCredentials.load(environment: ["AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "HOME": "/nonexistent"])
        }
    }

    @Test func credentialsFromTheSharedFileProfile() throws {
        let path = NSTemporaryDirectory() + "swapline-aws-credentials-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = """
            # comment
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = defaultsecret

            [r2]
            aws_access_key_id=R2KEY
            aws_secret_access_key=r2/secret=
            aws_session_token = tok
            [empty]
            region = auto
            """
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(
            try AWSCredentials.load(environment: ["AWS_SHARED_CREDENTIALS_FILE": path])
                == AWSCredentials(accessKeyID: "DEFAULTKEY", secretAccessKey: "defaultsecret"))
        #expect(
            try AWSCredentials.load(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "r2"])
                == AWSCredentials(accessKeyID: "R2KEY", secretAccessKey: "r2/secret=", sessionToken: "tok"))
        #expect(throws: CredentialsError.self) {
            try AWSCredentials.load(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "empty"])
        }
        #expect(throws: CredentialsError.self) {
            try AWSCredentials.load(environment: ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_PROFILE": "missing"])
        }
    }

    /// AWS's documented example of a presigned URL ("Authenticating Requests: Using Query
    /// Parameters (AWS Signature Version 4)"), signature included.
    @Test func presigningMatchesAWSExample() {
        let url = SigV4.presign(
            scheme: "https", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", region: "us-east-1",
            credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            date: Date(timeIntervalSince1970: 1_369_353_600), expires: 86_400)
        #expect(
            url == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
                + "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    }

    @Test func aSessionTokenIsPartOfThePresignedQuery() {
        let url = SigV4.presign(
            scheme: "http", host: "h:9000", path: "/b/k", region: "auto",
            credentials: AWSCredentials(accessKeyID: "K", secretAccessKey: "S", sessionToken: "a/b+c"),
            date: Date(timeIntervalSince1970: 0), expires: 60)
        #expect(url.contains("&X-Amz-Security-Token=a%2Fb%2Bc&X-Amz-SignedHeaders=host&X-Amz-Signature="))
    }

    @Test func thePublicURLReplacesPresigning() {
        let storage = S3ResultStorage(
            location: S3Location(bucket: "b", prefix: ""),
            settings: S3Settings(credentials: AWSCredentials(accessKeyID: "a", secretAccessKey: "b"), publicURL: "https://cdn.example/"),
            http: CurlHTTPClient())
        #expect(storage.resultURL(key: "t/k/result.jpg") == "https://cdn.example/t/k/result.jpg")
    }

    @Test func keysAreReadBackFromPublishedURLsOnly() {
        let credentials = AWSCredentials(accessKeyID: "a", secretAccessKey: "b")
        let presigned = S3ResultStorage(
            location: S3Location(bucket: "b", prefix: "swaps"),
            settings: S3Settings(endpoint: "http://127.0.0.1:9000", pathStyle: true, credentials: credentials), http: CurlHTTPClient())
        let url = presigned.resultURL(key: "swaps/t/k/result%.jpg")
        #expect(presigned.key(of: url) == "swaps/t/k/result%.jpg")
        #expect(presigned.key(of: "http://127.0.0.1:9000/other/swaps/t/k/result.jpg") == nil)
        #expect(presigned.key(of: "http://127.0.0.1:9000/b/elsewhere/t/k/result.jpg") == nil)
        #expect(presigned.key(of: "http://127.0.0.1:50051/outputs/t/k/result.jpg") == nil)
        let published = S3ResultStorage(
            location: S3Location(bucket: "b", prefix: ""),
            settings: S3Settings(credentials: credentials, publicURL: "https://cdn.example"), http: CurlHTTPClient())
        #expect(published.key(of: "https://cdn.example/t/k/result.jpg") == "t/k/result.jpg")
        #expect(published.key(of: "https://cdn.example.evil/t/k/result.jpg") == nil)
    }

    @Test func errorBodiesGiveTheProvidersCode() {
        let body = Array(
            """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match &amp; so on</Message>\
            <RequestId>1</RequestId></Error>
            """.utf8)
        #expect(S3ErrorBody.parse(body) == S3ErrorBody(code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match & so on"))
        #expect(S3ErrorBody.parse(Array("<html>bad gateway</html>".utf8)) == nil)
        #expect(S3ErrorBody.parse(Array("<Error><Message>no code</Message></Error>".utf8)) == nil)
        #expect(S3XML.firstValue(of: "UploadId", in: Array("<InitiateMultipartUploadResult><UploadId>a&lt;b</UploadId>".utf8)) == "a<b")
    }

    @Test func whichAnswersAreRetried() {
        func answer(_ status: Int, _ body: String = "") -> StorageTryFailure {
            S3ResultStorage.judge(status: status, headers: HTTPHeaders([("Retry-After", "2")]), body: Array(body.utf8))
        }
        #expect(answer(503, "<Error><Code>SlowDown</Code></Error>").retryable)
        #expect(answer(503, "<Error><Code>SlowDown</Code></Error>").summary == "HTTP 503 SlowDown")
        #expect(answer(500).retryable && answer(429).retryable)
        #expect(answer(400, "<Error><Code>RequestTimeout</Code></Error>").retryable)
        #expect(!answer(403, "<Error><Code>InvalidAccessKeyId</Code></Error>").retryable)
        #expect(!answer(400, "<Error><Code>BadDigest</Code></Error>").retryable)
        #expect(answer(503).retryAfter == .seconds(2))
        #expect(StorageRequests.transportSummary(.couldNotConnect("10.0.0.1 refused"), endpoint: "the endpoint") == "could not connect to the endpoint")
    }

    @Test func theCompletionManifestListsPartsInOrder() {
        #expect(
            S3ResultStorage.completionManifest(etags: ["\"a\"", "\"b\""])
                == "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>"
                + "<Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>")
    }

    @Test func digestsOfAFileSlice() async throws {
        let path = NSTemporaryDirectory() + "swapline-digest-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data("xxhello".utf8)))
        let digests = try await PayloadDigests.of(path: path, offset: 2, length: 5)
        #expect(digests == PayloadDigests.of(Array("hello".utf8)))
        #expect(digests.sha256Hex == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        #expect(digests.md5Base64 == "XUFAKrxLKna5cZ2REBfFkg==")
    }
}

/// Retries and aborts against a scripted store (no signature checks: those are moto's, in
/// tests/interop/test_storage_s3.py).
@Suite struct S3UploadTests {
    static let key = "t/k/result.jpg"
    static let objectTarget = "/bucket/t/k/result.jpg"

    static func storage(_ store: ScriptedHTTPServer, http: CurlHTTPClient, threshold: Int64 = 1 << 20) -> S3ResultStorage {
        S3ResultStorage(
            location: S3Location(bucket: "bucket", prefix: ""),
            settings: S3Settings(
                endpoint: store.url(""), pathStyle: true, credentials: AWSCredentials(accessKeyID: "AKID", secretAccessKey: "secret"),
                publicURL: "https://cdn.example", multipartThreshold: threshold, partSize: 64 * 1024, parallelParts: 2,
                retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(300))),
            http: http)
    }

    @Test func slowDownIsRetriedUntilTheStoreTakesTheFile() async throws {
        let store = try await ScriptedHTTPServer(routes: [
            Self.objectTarget: .init(status: 503, body: Array("<Error><Code>SlowDown</Code></Error>".utf8))
        ])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let file = LocalResultStorageTests.file([1, 2, 3], format: "jpg")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        let storing = Task { try await Self.storage(store, http: http).store(file, key: Self.key) }
        while store.requests.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        store.setRoute(Self.objectTarget, .init(status: 200, headers: [("ETag", "\"x\"")]))
        #expect(try await storing.value == "https://cdn.example/t/k/result.jpg")
        let puts = store.requests.filter { $0.method == "PUT" && $0.uri == Self.objectTarget }
        #expect(puts.count >= 2 && puts.allSatisfy { $0.body == [1, 2, 3] && $0.contentType == "image/jpeg" })
        await store.stop()
    }

    @Test func aStoreThatStaysDownFailsWithStatusCodeAndTries() async throws {
        let store = try await ScriptedHTTPServer(routes: [
            Self.objectTarget: .init(status: 503, body: Array("<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>".utf8))
        ])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let file = LocalResultStorageTests.file([1], format: "jpg")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        await #expect(throws: StorageFailure(provider: "s3", reason: "PUT of the object: HTTP 503 SlowDown after 3 tries")) {
            try await Self.storage(store, http: http).store(file, key: Self.key)
        }
        #expect(store.requests.count == 3)
        await store.stop()
    }

    @Test func aFailedMultipartUploadIsAborted() async throws {
        let store = try await ScriptedHTTPServer(routes: [
            "\(Self.objectTarget)?uploads=": .init(
                status: 200, body: Array("<InitiateMultipartUploadResult><UploadId>up+1</UploadId></InitiateMultipartUploadResult>".utf8)),
            "\(Self.objectTarget)?partNumber=1&uploadId=up%2B1": .init(status: 200, headers: [("ETag", "\"p1\"")]),
            "\(Self.objectTarget)?partNumber=2&uploadId=up%2B1": .init(
                status: 403, body: Array("<Error><Code>AccessDenied</Code></Error>".utf8)),
            "\(Self.objectTarget)?uploadId=up%2B1": .init(status: 204),
        ])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let file = LocalResultStorageTests.file([UInt8](repeating: 7, count: 100 * 1024), format: "jpg")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        await #expect(throws: StorageFailure(provider: "s3", reason: "PUT of part 2: HTTP 403 AccessDenied after 1 try")) {
            try await Self.storage(store, http: http, threshold: 1024).store(file, key: Self.key)
        }
        let requests = store.requests
        let parts = requests.filter { $0.method == "PUT" }.sorted { $0.uri < $1.uri }
        #expect(parts.map(\.body.count) == [64 * 1024, 36 * 1024])
        #expect(requests.last?.method == "DELETE" && requests.last?.uri == "\(Self.objectTarget)?uploadId=up%2B1")
        #expect(!requests.contains { $0.method == "POST" && $0.uri.hasSuffix("?uploadId=up%2B1") })
        await store.stop()
    }
}
