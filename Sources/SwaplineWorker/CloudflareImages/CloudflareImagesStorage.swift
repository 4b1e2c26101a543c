import CurlHTTP
import Foundation

/// How the worker reaches Cloudflare Images.
public struct CloudflareImagesSettings: Sendable {
    public var apiToken: String
    /// `https://api.cloudflare.com/client/v4`; another base for tests.
    public var apiBase: String
    /// The variant whose delivery URL is put in the result, e.g. "public".
    public var variant: String
    /// Tries of each request on 5xx, 429 and transport failures, and their backoff.
    public var retry: RetryPolicy
    public var requestTimeout: Duration

    public init(
        apiToken: String, apiBase: String = "https://api.cloudflare.com/client/v4", variant: String = "public",
        retry: RetryPolicy = RetryPolicy(maxAttempts: 4), requestTimeout: Duration = .seconds(300)
    ) {
        self.apiToken = apiToken
        self.apiBase = apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase
        self.variant = variant
        self.retry = retry
        self.requestTimeout = requestTimeout
    }

    /// Parses the account of a `cfimages:ACCOUNT_ID` spec: Cloudflare account ids are 32 hex digits.
    public static func accountID(ofSpec spec: String) throws(StorageSpecError) -> String {
        let account = spec.dropFirst("cfimages:".count)
        guard spec.hasPrefix("cfimages:"), account.count == 32, account.allSatisfy(Set("0123456789abcdefABCDEF").contains) else {
            throw StorageSpecError(spec: spec, problem: "expected cfimages:ACCOUNT_ID, the account id being 32 hex digits")
        }
        return String(account)
    }
}

/// Results in Cloudflare Images, published at the delivery URL of the configured variant.
///
/// Files Cloudflare Images would refuse are refused before any upload, so the next backend of
/// the chain takes them: formats other than JPEG, PNG, GIF, WebP and SVG, files over 10 MB,
/// images over 100 megapixels (read from the file's header). The file is sent as a multipart
/// POST read from disk. The API takes no checksum of the upload; the multipart body's length
/// and TLS are all the integrity it offers.
public struct CloudflareImagesStorage: ResultStorage {
    public static let maxFileBytes: Int64 = 10_000_000
    public static let maxPixels = 100_000_000
    static let rasterFormats: Set<String> = ["jpg", "jpeg", "png", "gif", "webp"]

    public let accountID: String
    public let settings: CloudflareImagesSettings
    let http: CurlHTTPClient
    public var providerName: String { "cfimages" }

    public init(accountID: String, settings: CloudflareImagesSettings, http: CurlHTTPClient) {
        self.accountID = accountID
        self.settings = settings
        self.http = http
    }

    /// `accounts/{account}/images/v1` under the API base.
    var imagesURL: String { "\(settings.apiBase)/accounts/\(accountID)/images/v1" }

    public func store(_ file: OutputFile, taskID: String) async throws(StorageFailure) -> String {
        try await checkAcceptable(file)
        var request = HTTPRequest(method: .post, url: imagesURL, totalTimeout: settings.requestTimeout, maxResponseBytes: 1024 * 1024)
        request.headers = HTTPHeaders([("Authorization", "Bearer \(settings.apiToken)")])
        request.multipartFile = MultipartFile(
            fieldName: "file", fileName: "\(taskID).\(file.format)", contentType: Self.contentType(of: file), path: file.path)
        let answer = try await send(request, what: "upload")
        guard let image = CloudflareAnswer.parse(answer.body)?.image else {
            throw StorageFailure(provider: providerName, reason: "upload: HTTP \(answer.status) without an image id in the answer")
        }
        guard let url = image.variants.first(where: { Self.variant(of: $0) == settings.variant }) else {
            // Not left behind unpublished.
            _ = try? await deleteImage(id: image.id)
            throw StorageFailure(provider: providerName, reason: "upload: the account has no variant \"\(settings.variant)\"")
        }
        return url
    }

    /// Delivery URLs end in `/{account hash}/{image id}/{variant}` (on imagedelivery.net or a
    /// custom domain's `/cdn-cgi/imagedelivery/`); one with this storage's variant is deleted
    /// by its id. Cloudflare's 404 means the account holds no such image: not this backend's.
    public func delete(url: String) async throws(StorageFailure) -> Bool {
        guard let path = URLComponents(string: url)?.path else { return false }
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[parts.count - 1] == settings.variant else { return false }
        return try await deleteImage(id: String(parts[parts.count - 2]))
    }

    /// Why Cloudflare Images would refuse `file`, found before uploading it.
    func checkAcceptable(_ file: OutputFile) async throws(StorageFailure) {
        let format = file.format.lowercased()
        guard Self.rasterFormats.contains(format) || format == "svg" else {
            throw StorageFailure(provider: providerName, reason: "refused: Cloudflare Images does not take \(file.format) files")
        }
        guard file.size <= Self.maxFileBytes else {
            throw StorageFailure(provider: providerName, reason: "refused: \(file.size) bytes is over Cloudflare Images' 10 MB limit")
        }
        guard format != "svg" else { return }
        let dimensions: ImageDimensions
        do {
            dimensions = try await BlockingIO.run { try ImageHeader.dimensions(ofFileAt: file.path) }
        } catch {
            throw StorageFailure(provider: providerName, reason: "refused: \(error)")
        }
        guard dimensions.pixels <= Self.maxPixels else {
            throw StorageFailure(
                provider: providerName,
                reason: "refused: \(dimensions.width)x\(dimensions.height) is over Cloudflare Images' 100 megapixel limit")
        }
    }

    private func deleteImage(id: String) async throws(StorageFailure) -> Bool {
        // Cloudflare's ids (UUIDs, or custom ids) as a single URL path segment.
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return false }
        var request = HTTPRequest(method: .delete, url: "\(imagesURL)/\(id)", totalTimeout: settings.requestTimeout, maxResponseBytes: 1024 * 1024)
        request.headers = HTTPHeaders([("Authorization", "Bearer \(settings.apiToken)")])
        return try await send(request, what: "DELETE of the image", notFoundIsAnswer: true).status != 404
    }

    /// The output's content type; SVG's here only (MediaType leaves it out, so that the
    /// server's `/outputs/` never serves a scriptable SVG from its own origin).
    static func contentType(of file: OutputFile) -> String {
        file.format.lowercased() == "svg" ? "image/svg+xml" : file.contentType
    }

    /// The last path component of a delivery URL.
    static func variant(of url: String) -> String? {
        URLComponents(string: url)?.path.split(separator: "/").last.map(String.init)
    }

    /// `request`, tried again with backoff on transport failures, 5xx and 429; the answer when
    /// it is a 2xx (or, with `notFoundIsAnswer`, a 404).
    private func send(_ request: HTTPRequest, what: String, notFoundIsAnswer: Bool = false) async throws(StorageFailure) -> HTTPResponse {
        try await StorageRequests.send(
            request, http: http, policy: settings.retry, provider: providerName, what: what, endpoint: "the API",
            isAnswer: { (200..<300).contains($0.status) || (notFoundIsAnswer && $0.status == 404) },
            judge: { response in
                StorageTryFailure(
                    summary: "HTTP \(response.status)" + (CloudflareAnswer.parse(response.body)?.errorSummary.map { " \($0)" } ?? ""),
                    retryable: response.status >= 500 || response.status == 429,
                    retryAfter: StorageRequests.retryAfter(response.headers))
            })
    }
}

/// The JSON envelope of Cloudflare's API: `{"success", "errors": [{"code", "message"}],
/// "result": {"id", "variants": [...]}}`.
struct CloudflareAnswer: Decodable, Equatable {
    struct APIError: Decodable, Equatable {
        var code: Int
        var message: String
    }

    struct Image: Decodable, Equatable {
        var id: String
        var variants: [String]
    }

    var success: Bool
    var errors: [APIError]
    var image: Image?

    enum CodingKeys: String, CodingKey {
        case success, errors
        case image = "result"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        success = try container.decodeIfPresent(Bool.self, forKey: .success) ?? false
        errors = try container.decodeIfPresent([APIError].self, forKey: .errors) ?? []
        image = try? container.decodeIfPresent(Image.self, forKey: .image)
    }

    static func parse(_ body: [UInt8]) -> CloudflareAnswer? {
        try? JSONDecoder().decode(CloudflareAnswer.self, from: Data(body))
    }

    /// "Cloudflare error 10000: Authentication error" (every error, `; `-separated); nil without errors.
    var errorSummary: String? {
        guard !errors.isEmpty else { return nil }
        return errors.map { "Cloudflare error \($0.code): \($0.message)" }.joined(separator: "; ")
    }
}
