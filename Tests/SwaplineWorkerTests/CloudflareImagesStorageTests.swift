import CurlHTTP
import Foundation
import SwaplineTestKit
import Testing

@testable import SwaplineWorker

@Suite struct ImageHeaderTests {
    static func read(_ bytes: [UInt8]) -> ImageHeader.Reader {
        { offset, count in
            let start = min(Int(offset), bytes.count)
            return Array(bytes[start..<min(start + count, bytes.count)])
        }
    }

    static func dimensions(_ bytes: [UInt8]) throws -> ImageDimensions { try ImageHeader.dimensions(read: read(bytes)) }

    static func bigEndian(_ value: Int, bytes: Int) -> [UInt8] { (0..<bytes).reversed().map { UInt8((value >> (8 * $0)) & 0xFF) } }
    static func littleEndian(_ value: Int, bytes: Int) -> [UInt8] { (0..<bytes).map { UInt8((value >> (8 * $0)) & 0xFF) } }

    static func png(width: Int, height: Int) -> [UInt8] {
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + bigEndian(13, bytes: 4) + Array("IHDR".utf8)
            + bigEndian(width, bytes: 4) + bigEndian(height, bytes: 4) + [8, 2, 0, 0, 0] + [0, 0, 0, 0]
    }

    static func riff(_ chunk: String, _ payload: [UInt8]) -> [UInt8] {
        let padded = payload + [UInt8](repeating: 0, count: max(0, 14 - payload.count))
        return Array("RIFF".utf8) + littleEndian(padded.count + 12, bytes: 4) + Array("WEBP".utf8) + Array(chunk.utf8)
            + littleEndian(padded.count, bytes: 4) + padded
    }

    @Test func pngReadsIHDR() throws {
        #expect(try Self.dimensions(Self.png(width: 640, height: 480)) == ImageDimensions(width: 640, height: 480))
        #expect(try Self.dimensions(Self.png(width: 20_000, height: 20_000)).pixels == 400_000_000)
    }

    @Test func gifReadsTheLogicalScreen() throws {
        let gif = Array("GIF89a".utf8) + Self.littleEndian(300, bytes: 2) + Self.littleEndian(200, bytes: 2) + [0, 0, 0]
        #expect(try Self.dimensions(gif) == ImageDimensions(width: 300, height: 200))
        let old = Array("GIF87a".utf8) + Self.littleEndian(1, bytes: 2) + Self.littleEndian(65535, bytes: 2)
        #expect(try Self.dimensions(old) == ImageDimensions(width: 1, height: 65535))
    }

    @Test func webPReadsLossyLosslessAndExtendedHeaders() throws {
        let lossy = Self.riff("VP8 ", [0x9D, 0x01, 0x00, 0x9D, 0x01, 0x2A] + Self.littleEndian(800, bytes: 2) + Self.littleEndian(0x4000 | 600, bytes: 2))
        #expect(try Self.dimensions(lossy) == ImageDimensions(width: 800, height: 600))
        let bits = (1023 - 1) | ((767 - 1) << 14)
        let lossless = Self.riff("VP8L", [0x2F] + Self.littleEndian(bits, bytes: 4))
        #expect(try Self.dimensions(lossless) == ImageDimensions(width: 1023, height: 767))
        let extended = Self.riff("VP8X", [0x10, 0, 0, 0] + Self.littleEndian(12_000 - 1, bytes: 3) + Self.littleEndian(9_000 - 1, bytes: 3))
        #expect(try Self.dimensions(extended) == ImageDimensions(width: 12_000, height: 9_000))
        let brokenLossy = Self.riff("VP8 ", [0, 0, 0, 1, 2, 3, 0, 0, 0, 0])
        #expect(throws: ImageHeader.Problem.truncated) { try Self.dimensions(brokenLossy) }
    }

    @Test func jpegWalksTheSegmentsToTheFrameHeader() throws {
        let app0 = [0xFF, 0xE0] + Self.bigEndian(16, bytes: 2) + [UInt8](repeating: 0x41, count: 14)
        // A large APP1 (EXIF) before the frame header, as cameras write.
        let app1 = [0xFF, 0xE1] + Self.bigEndian(40_000, bytes: 2) + [UInt8](repeating: 0, count: 39_998)
        let dht = [0xFF, 0xC4] + Self.bigEndian(4, bytes: 2) + [0, 0]
        let sof2 = [0xFF, 0xC2] + Self.bigEndian(17, bytes: 2) + [8] + Self.bigEndian(3000, bytes: 2) + Self.bigEndian(4000, bytes: 2)
            + [UInt8](repeating: 0, count: 10)
        let jpeg: [UInt8] = [0xFF, 0xD8] + app0 + app1 + [0xFF] + dht + sof2 + [0xFF, 0xDA]
        #expect(try Self.dimensions(jpeg) == ImageDimensions(width: 4000, height: 3000))
        // Scan data before any frame header: malformed.
        #expect(throws: ImageHeader.Problem.truncated) { try Self.dimensions([0xFF, 0xD8, 0xFF, 0xDA, 0, 4, 0, 0]) }
        #expect(throws: ImageHeader.Problem.truncated) { try Self.dimensions([0xFF, 0xD8] + app0) }
    }

    @Test func otherFilesAreUnrecognized() {
        #expect(throws: ImageHeader.Problem.unrecognized) { try Self.dimensions(Array("<svg xmlns=\"http://www.w3.org/2000/svg\"/>".utf8)) }
        #expect(throws: ImageHeader.Problem.unrecognized) { try Self.dimensions([]) }
        #expect(throws: ImageHeader.Problem.truncated) { try Self.dimensions(Array(Self.png(width: 1, height: 1).prefix(20))) }
    }
}

@Suite struct CloudflareImagesStorageTests {
    static let account = "0123456789abcdef0123456789ABCDEF"

    @Test func specsNameA32HexDigitAccount() throws {
        #expect(try CloudflareImagesSettings.accountID(ofSpec: "cfimages:\(Self.account)") == Self.account)
        for bad in ["cfimages:", "cfimages:123", "cfimages:\(Self.account)0", "cfimages:0123456789abcdef0123456789abcdeg", "cfimage:\(Self.account)"] {
            #expect(throws: StorageSpecError.self, "\(bad)") { try CloudflareImagesSettings.accountID(ofSpec: bad) }
        }
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        #expect(throws: StorageSpecError.self) {
            try ResultStorageSpec.make("cfimages:\(Self.account)", publicBaseURL: "", s3: nil, http: http)
        }
        let made = try ResultStorageSpec.make(
            "cfimages:\(Self.account)", publicBaseURL: "", s3: nil, cloudflareImages: CloudflareImagesSettings(apiToken: "t"), http: http)
        #expect((made as? CloudflareImagesStorage)?.imagesURL == "https://api.cloudflare.com/client/v4/accounts/\(Self.account)/images/v1")
    }

    @Test func answersAndErrorsParse() {
        let success = CloudflareAnswer.parse(Array("""
            {"result":{"id":"2cdc28f0-017a-49c4-9ed7-87056c83901","filename":"t.jpg","uploaded":"2022-01-31T16:39:28.458Z",
            "requireSignedURLs":false,"variants":["https://imagedelivery.net/Vi7wi5KSItxGFsWRG2Us6Q/2cdc28f0-017a-49c4-9ed7-87056c83901/public",
            "https://imagedelivery.net/Vi7wi5KSItxGFsWRG2Us6Q/2cdc28f0-017a-49c4-9ed7-87056c83901/thumbnail"]},
            "success":true,"errors":[],"messages":[]}
            """.utf8))
        #expect(success?.success == true && success?.errorSummary == nil)
        #expect(success?.image?.id == "2cdc28f0-017a-49c4-9ed7-87056c83901" && success?.image?.variants.count == 2)
        let failure = CloudflareAnswer.parse(Array("""
            {"result":null,"success":false,"errors":[{"code":10000,"message":"Authentication error"},{"code":5400,"message":"Bad request"}],"messages":[]}
            """.utf8))
        #expect(failure?.image == nil)
        #expect(failure?.errorSummary == "Cloudflare error 10000: Authentication error; Cloudflare error 5400: Bad request")
        #expect(CloudflareAnswer.parse(Array("<html>bad gateway</html>".utf8)) == nil)
    }

    static func storage(_ api: ScriptedHTTPServer, http: CurlHTTPClient, variant: String = "public") -> CloudflareImagesStorage {
        CloudflareImagesStorage(
            accountID: account,
            settings: CloudflareImagesSettings(
                apiToken: "token", apiBase: api.url("/client/v4"), variant: variant,
                retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(50))),
            http: http)
    }

    static let uploadTarget = "/client/v4/accounts/\(account)/images/v1"

    static func uploaded(id: String) -> ScriptedHTTPServer.Response {
        .init(body: Array("""
            {"success":true,"errors":[],"result":{"id":"\(id)","variants":["https://imagedelivery.net/HASH/\(id)/thumb","https://imagedelivery.net/HASH/\(id)/public"]}}
            """.utf8))
    }

    @Test func refusesWhatCloudflareImagesWouldRefuseWithoutUploading() async throws {
        let api = try await ScriptedHTTPServer(routes: [Self.uploadTarget: Self.uploaded(id: "img")])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let storage = Self.storage(api, http: http)
        let video = LocalResultStorageTests.file([0, 0, 0, 0x18], format: "mp4")
        let huge = LocalResultStorageTests.file(ImageHeaderTests.png(width: 10_001, height: 10_000), format: "png")
        let notAnImage = LocalResultStorageTests.file(Array("hello".utf8), format: "jpg")
        let largest = LocalResultStorageTests.file(ImageHeaderTests.png(width: 10_000, height: 10_000), format: "png")
        defer { for file in [video, huge, notAnImage, largest] { try? FileManager.default.removeItem(atPath: file.path) } }
        var tooLarge = largest
        tooLarge.size = CloudflareImagesStorage.maxFileBytes + 1
        for (file, reason) in [
            (video, "refused: Cloudflare Images does not take mp4 files"),
            (tooLarge, "refused: 10000001 bytes is over Cloudflare Images' 10 MB limit"),
            (huge, "refused: 10001x10000 is over Cloudflare Images' 100 megapixel limit"),
            (notAnImage, "refused: not a JPEG, PNG, GIF or WebP file"),
        ] {
            await #expect(throws: StorageFailure(provider: "cfimages", reason: reason)) { try await storage.store(file, taskID: "t1") }
        }
        #expect(api.requests.isEmpty)
        // Exactly 100 megapixels is allowed.
        #expect(try await storage.store(largest, taskID: "t1") == "https://imagedelivery.net/HASH/img/public")
        await api.stop()
    }

    @Test func uploadsOneMultipartFilePartAndPublishesTheVariant() async throws {
        let api = try await ScriptedHTTPServer(routes: [Self.uploadTarget: Self.uploaded(id: "abc-123")])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let image = ImageHeaderTests.png(width: 2, height: 2) + [1, 2, 3, 0, 255]
        let file = LocalResultStorageTests.file(image, format: "png")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        #expect(try await Self.storage(api, http: http).store(file, taskID: "task_1") == "https://imagedelivery.net/HASH/abc-123/public")
        let upload = try #require(api.requests.first)
        #expect(upload.method == "POST" && upload.uri == Self.uploadTarget && api.requests.count == 1)
        let boundary = try #require(upload.contentType.components(separatedBy: "boundary=").last)
        #expect(upload.contentType.hasPrefix("multipart/form-data; boundary="))
        let expected = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"task_1.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
            + image + Array("\r\n--\(boundary)--\r\n".utf8)
        #expect(upload.body == expected)
        await api.stop()
    }

    @Test func svgGoesUpAsSVGWithoutAPixelCheck() async throws {
        let api = try await ScriptedHTTPServer(routes: [Self.uploadTarget: Self.uploaded(id: "svg1")])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let svg = Array("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100000\" height=\"100000\"/>".utf8)
        let file = LocalResultStorageTests.file(svg, format: "svg")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        #expect(try await Self.storage(api, http: http).store(file, taskID: "t") == "https://imagedelivery.net/HASH/svg1/public")
        let body = String(decoding: try #require(api.requests.first).body, as: UTF8.self)
        #expect(body.contains("filename=\"t.svg\"\r\nContent-Type: image/svg+xml\r\n\r\n<svg"))
        await api.stop()
    }

    @Test func errorsNameCloudflaresCodeAndThrottlingIsRetried() async throws {
        let api = try await ScriptedHTTPServer(routes: [
            Self.uploadTarget: .init(status: 429, body: Array(#"{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}]}"#.utf8))
        ])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let file = LocalResultStorageTests.file(ImageHeaderTests.png(width: 1, height: 1), format: "png")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        let storage = Self.storage(api, http: http)
        await #expect(throws: StorageFailure(provider: "cfimages", reason: "upload: HTTP 429 Cloudflare error 971: Please wait and consider throttling your request speed after 3 tries")) {
            try await storage.store(file, taskID: "t")
        }
        #expect(api.requests.count == 3)
        api.setRoute(Self.uploadTarget, .init(status: 403, body: Array(#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#.utf8)))
        await #expect(throws: StorageFailure(provider: "cfimages", reason: "upload: HTTP 403 Cloudflare error 10000: Authentication error after 1 try")) {
            try await storage.store(file, taskID: "t")
        }
        #expect(api.requests.count == 4)
        await api.stop()
    }

    @Test func aMissingVariantFailsAndRemovesTheUpload() async throws {
        let api = try await ScriptedHTTPServer(routes: [Self.uploadTarget: Self.uploaded(id: "img9"), Self.uploadTarget + "/img9": .init(status: 200)])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let file = LocalResultStorageTests.file(ImageHeaderTests.png(width: 1, height: 1), format: "png")
        defer { try? FileManager.default.removeItem(atPath: file.path) }
        await #expect(throws: StorageFailure(provider: "cfimages", reason: "upload: the account has no variant \"large\"")) {
            try await Self.storage(api, http: http, variant: "large").store(file, taskID: "t")
        }
        #expect(api.requests.map(\.method) == ["POST", "DELETE"] && api.requests.last?.uri == Self.uploadTarget + "/img9")
        await api.stop()
    }

    @Test func deletesDeliveryURLsOfItsVariantByImageID() async throws {
        let api = try await ScriptedHTTPServer(routes: [Self.uploadTarget + "/img1": .init(status: 200)])
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let storage = Self.storage(api, http: http)
        #expect(try await storage.delete(url: "https://imagedelivery.net/HASH/img1/public"))
        #expect(try await storage.delete(url: "https://example.com/cdn-cgi/imagedelivery/HASH/img1/public"))
        // Cloudflare's 404: the account holds no such image.
        #expect(try await !storage.delete(url: "https://imagedelivery.net/HASH/gone/public"))
        // Not this storage's: another variant, a local or S3 result URL.
        #expect(try await !storage.delete(url: "https://imagedelivery.net/HASH/img1/thumb"))
        #expect(try await !storage.delete(url: "http://127.0.0.1:8080/outputs/t/k/result.jpg"))
        #expect(api.requests.map(\.uri) == [Self.uploadTarget + "/img1", Self.uploadTarget + "/img1", Self.uploadTarget + "/gone"])
        #expect(api.requests.allSatisfy { $0.method == "DELETE" })
        await api.stop()
    }
}
