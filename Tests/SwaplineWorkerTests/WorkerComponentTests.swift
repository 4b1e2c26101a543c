import CurlHTTP
import Foundation
import SwaplineCore
import SwaplineMessages
import Synchronization
import Testing

@testable import SwaplineWorker

/// Records the waits instead of sleeping.
private final class SleepRecorder: Sendable {
    let waits = Mutex<[Duration]>([])
    func sleep(_ duration: Duration) { waits.withLock { $0.append(duration) } }
}

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 3, baseDelay: .seconds(1), maxDelay: .seconds(30))

    @Test func backoffDoublesWithJitterInTheUpperHalf() {
        #expect(policy.delay(afterAttempt: 1, retryAfter: nil, jitter: 0) == .milliseconds(500))
        #expect(policy.delay(afterAttempt: 1, retryAfter: nil, jitter: 0.999) < .seconds(1))
        #expect(policy.delay(afterAttempt: 2, retryAfter: nil, jitter: 0) == .seconds(1))
        #expect(policy.delay(afterAttempt: 3, retryAfter: nil, jitter: 0) == .seconds(2))
        #expect(policy.delay(afterAttempt: 20, retryAfter: nil, jitter: 1) == .seconds(30))
    }

    @Test func retryAfterReplacesTheComputedWait() {
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(7), jitter: 0.5) == .seconds(7))
        #expect(FaceFusionClient.retryAfter("2") == .seconds(2))
        #expect(FaceFusionClient.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT") == nil)
    }

    @Test(arguments: ["inf", "-inf", "nan", "1e300", "-1", "1.5", "0x10", "+3", "Fri, 31 Dec 9999 23:59:59 GMT", ""])
    func hostileRetryAfterIsIgnored(value: String) {
        #expect(FaceFusionClient.retryAfter(value) == nil)
    }

    @Test func hugeRetryAfterIsClampedToTheDocumentedMaximum() {
        let maximum = Duration.seconds(FaceFusionClient.maxRetryAfterSeconds)
        #expect(FaceFusionClient.retryAfter("3600") == maximum)
        #expect(FaceFusionClient.retryAfter("3601") == maximum)
        #expect(FaceFusionClient.retryAfter(String(repeating: "9", count: 400)) == maximum)
        #expect(FaceFusionClient.retryAfter("000000000000000000000000000007") == .seconds(7))
        #expect(policy.delay(afterAttempt: 1, retryAfter: FaceFusionClient.retryAfter("99999999999999999999"), jitter: 0.5) == policy.maxDelay)
    }

    @Test func aServerErrorThatHealsWithinThreeTriesSucceeds() async throws {
        let recorder = SleepRecorder()
        let result = try await policy.run(sleep: { recorder.sleep($0) }, jitter: { 0 }) { attempt throws(EngineCallError) in
            if attempt < 3 { throw .serverError(status: 503, detail: "busy", retryAfter: nil) }
            return attempt
        }
        #expect(result == 3)
        #expect(recorder.waits.withLock { $0 } == [.milliseconds(500), .seconds(1)])
    }

    @Test func threeFailuresGiveUpWithTheLastError() async {
        let attempts = Mutex(0)
        await #expect(throws: EngineCallError.timedOut("slow")) {
            try await policy.run(sleep: { _ in }, jitter: { 0 }) { _ throws(EngineCallError) -> Int in
                attempts.withLock { $0 += 1 }
                throw .timedOut("slow")
            }
        }
        #expect(attempts.withLock { $0 } == 3)
    }

    @Test func otherClientErrorsAreNotRetried() async {
        let attempts = Mutex(0)
        await #expect(throws: EngineCallError.rejected(status: 400, detail: "bad model")) {
            try await policy.run(sleep: { _ in }, jitter: { 0 }) { _ throws(EngineCallError) -> Int in
                attempts.withLock { $0 += 1 }
                throw .rejected(status: 400, detail: "bad model")
            }
        }
        #expect(attempts.withLock { $0 } == 1)
    }

    @Test func tooManyRequestsHonoursRetryAfter() async throws {
        let recorder = SleepRecorder()
        _ = try await policy.run(sleep: { recorder.sleep($0) }, jitter: { 0 }) { attempt throws(EngineCallError) in
            if attempt == 1 { throw .serverError(status: 429, detail: "slow down", retryAfter: .seconds(3)) }
            return attempt
        }
        #expect(recorder.waits.withLock { $0 } == [.seconds(3)])
    }
}

@Suite struct EnginePoolTests {
    @Test func workGoesToTheLeastLoadedHealthyEngine() async {
        let pool = EnginePool(urls: ["http://a", "http://b", "http://c"]) { url in url == "http://c" ? "down" : nil }
        #expect(pool.acquire() == nil)  // nothing checked yet
        await pool.refreshHealth()
        let first = pool.acquire()
        let second = pool.acquire()
        #expect(Set([first, second]) == Set(["http://a", "http://b"]))
        pool.release("http://a")
        #expect(pool.acquire() == "http://a")
    }

    @Test func anUnhealthyEngineReturnsAfterAPassingCheck() async {
        let healthy = Mutex(false)
        let pool = EnginePool(urls: ["http://a"]) { _ in healthy.withLock { $0 } ? nil : "unhealthy" }
        await pool.refreshHealth()
        #expect(!pool.hasHealthyEngine)
        healthy.withLock { $0 = true }
        await pool.refreshHealth()
        #expect(pool.acquire() == "http://a")
    }
}

@Suite struct LocalResultStorageTests {
    /// A file holding `bytes`, removed by the caller.
    static func file(_ bytes: [UInt8], format: String = "webp") -> OutputFile {
        let path = NSTemporaryDirectory() + "swapline-output-\(UUID().uuidString).\(format)"
        precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
        return OutputFile(format: format, path: path, size: Int64(bytes.count))
    }

    @Test func storesUnderTaskIDAndAnUnguessableKeyWithAPublicURL() async throws {
        let directory = "/tmp/swapline-storage-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = LocalResultStorage(directory: directory, publicBaseURL: "http://127.0.0.1:50051/")
        let first = Self.file([1, 2, 3])
        defer { try? FileManager.default.removeItem(atPath: first.path) }
        let url = try await storage.store(first, taskID: "task_1")
        let prefix = "http://127.0.0.1:50051/outputs/task_1/"
        #expect(url.hasPrefix(prefix) && url.hasSuffix("/result.webp"))
        let key = url.dropFirst(prefix.count).dropLast("/result.webp".count)
        #expect(key.count == 32 && key.allSatisfy(\.isHexDigit))
        #expect(FileManager.default.contents(atPath: "\(directory)/task_1/\(key)/result.webp") == Data([1, 2, 3]))
        let again = try await storage.store(first, taskID: "task_1")
        #expect(again != url)
        #expect(first.contentType == "image/webp")
    }

    @Test func deletingRemovesTheFileAndTheTasksEmptyFolder() async throws {
        let directory = "/tmp/swapline-storage-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = LocalResultStorage(directory: directory, publicBaseURL: "http://public.example")
        let file = Self.file([1], format: "jpg")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        let first = try await storage.store(file, taskID: "task_1")
        let second = try await storage.store(file, taskID: "task_1")
        // The server may know itself by another name than the workers' public URL.
        #expect(try await storage.delete(url: first.replacingOccurrences(of: "http://public.example", with: "http://127.0.0.1:1")))
        #expect(FileManager.default.fileExists(atPath: "\(directory)/task_1"))
        #expect(try await storage.delete(url: second))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/task_1"))
        #expect(try await storage.delete(url: second), "already gone counts as deleted")
        for foreign in ["http://h/outputs/../etc/passwd", "http://h/outputs/task_1/result.jpg", "https://bucket.s3.example/t/k/result.jpg"] {
            #expect(try await !storage.delete(url: foreign), "\(foreign)")
        }
    }

    @Test func storageSpecsParse() throws {
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let s3 = S3Settings(credentials: AWSCredentials(accessKeyID: "a", secretAccessKey: "b"))
        #expect(try ResultStorageSpec.make("local:/tmp/x", publicBaseURL: "http://h", s3: nil, http: http).providerName == "local")
        #expect(try ResultStorageSpec.make("s3://bucket/p", publicBaseURL: "http://h", s3: s3, http: http).providerName == "s3")
        #expect(throws: StorageSpecError.self) { try ResultStorageSpec.make("gcs:bucket", publicBaseURL: "http://h", s3: s3, http: http) }
        #expect(throws: StorageSpecError.self) { try ResultStorageSpec.make("s3://bucket", publicBaseURL: "http://h", s3: nil, http: http) }
    }

    /// A backend that fails every file, as a store that stays down does.
    struct FailingStorage: ResultStorage {
        var providerName: String
        func store(_ file: OutputFile, taskID: String) async throws(StorageFailure) -> String {
            throw StorageFailure(provider: providerName, reason: "HTTP 503 SlowDown after 4 tries")
        }
        func delete(url: String) async throws(StorageFailure) -> Bool { false }
    }

    @Test func theChainFallsBackInOrderAndNamesEveryFailure() async throws {
        let directory = "/tmp/swapline-storage-test-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = Self.file([9])
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        let chain = ResultStorageChain([FailingStorage(providerName: "s3"), LocalResultStorage(directory: directory, publicBaseURL: "http://h")])
        let stored = try await chain.store(file, taskID: "t")
        #expect(stored.provider == "local" && stored.url.hasPrefix("http://h/outputs/t/"))
        let broken = ResultStorageChain([FailingStorage(providerName: "s3"), FailingStorage(providerName: "images")])
        await #expect(throws: StorageFailure(provider: "s3,images", reason: "s3: HTTP 503 SlowDown after 4 tries; images: HTTP 503 SlowDown after 4 tries")) {
            try await broken.store(file, taskID: "t")
        }
    }

    @Test func theProviderSummaryNamesMixedProvidersPerOutput() {
        #expect(FaceSwapProcessor.providerSummary(["jpg": StoredFile(url: "a", provider: "s3"), "gif": StoredFile(url: "b", provider: "s3")]) == "s3")
        #expect(
            FaceSwapProcessor.providerSummary(["jpg": StoredFile(url: "a", provider: "s3"), "gif": StoredFile(url: "b", provider: "local")])
                == "gif:local,jpg:s3")
        let many = Dictionary(uniqueKeysWithValues: (0..<20).map { ("fmt\($0)", StoredFile(url: "u", provider: $0 == 0 ? "local" : "s3")) })
        #expect(FaceSwapProcessor.providerSummary(many) == "local,s3")
    }

    @Test func outputFormatComesFromTheURL() {
        #expect(FaceSwapProcessor.fileExtension(of: "http://e/outputs/j/result.gif?x=1") == "gif")
        #expect(FaceSwapProcessor.fileExtension(of: "http://e/outputs/j/result") == nil)
    }
}

@Suite struct EngineRequestTests {
    static let inputs = EngineInputs(
        source: FetchedFile(bytes: [0xFF, 0xD8, 1, 2], contentType: "image/jpeg", url: try! CheckedURL.parse("https://s.example/a.jpg").get()),
        target: FetchedFile(bytes: [3, 4], contentType: nil, url: try! CheckedURL.parse("https://s.example/b.webp?x=1").get()))

    @Test func optionsBecomeFieldsButNeverOverrideTheJobOrCarryAURL() throws {
        let params = Swapline_V1_FaceSwapParams(
            sourceURL: "http://s/a.jpg", targetURL: "http://s/b.jpg", resolution: "512x512", model: "inswapper_128",
            options: ["face_enhancer_model": "gfpgan_1.4", "model": "hijack", "source_url": "http://169.254.169.254/", "target": "x"])
        let job = try JSONSerialization.jsonObject(with: Data(params.engineJob())) as? [String: String]
        #expect(job == ["resolution": "512x512", "model": "inswapper_128", "face_enhancer_model": "gfpgan_1.4"])
    }

    @Test func theEngineGetsTheFilesNotTheURLs() throws {
        let params = Swapline_V1_FaceSwapParams(sourceURL: "https://s.example/a.jpg", targetURL: "https://s.example/b.webp?x=1", resolution: "512x512", model: "m")
        let (contentType, body) = params.engineRequestBody(Self.inputs, boundary: "B")
        #expect(contentType == "multipart/form-data; boundary=B")
        let expected =
            "--B\r\nContent-Disposition: form-data; name=\"job\"\r\nContent-Type: application/json\r\n\r\n"
            + #"{"model":"m","resolution":"512x512"}"# + "\r\n"
            + "--B\r\nContent-Disposition: form-data; name=\"source\"; filename=\"source.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        #expect(body.starts(with: Array(expected.utf8) + [0xFF, 0xD8, 1, 2]))
        let tail = "\r\n--B\r\nContent-Disposition: form-data; name=\"target\"; filename=\"target.webp\"\r\nContent-Type: image/webp\r\n\r\n"
        let end = Array(tail.utf8) + [3, 4] + Array("\r\n--B--\r\n".utf8)
        #expect(body.suffix(end.count).elementsEqual(end))
        #expect(!String(decoding: body, as: UTF8.self).contains("s.example"))
    }

    @Test func engineErrorsReachTheClientWithoutTheEnginesWords() {
        let error = EngineCallError.rejected(status: 422, detail: "could not load inputs: [Errno 111] Connection refused 10.0.0.7:22")
        #expect(error.publicDescription == "engine rejected the job with HTTP 422")
        #expect(error.description.contains("10.0.0.7:22"))
        #expect(EngineCallError.unreachable("connect to 10.0.0.5 port 8000 failed").publicDescription == "engine unreachable")
        #expect(EngineCallError.serverError(status: 503, detail: "busy", retryAfter: nil).publicDescription == "engine answered HTTP 503")
        #expect(EngineCallError.invalidResponse("<html>").publicDescription == "invalid engine response")
    }
}
