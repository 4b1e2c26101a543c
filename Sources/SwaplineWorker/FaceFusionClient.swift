import CurlHTTP
import Foundation
import SwaplineCore
import SwaplineMessages

/// Why a call to a FaceFusion engine failed, and whether trying again can help.
public enum EngineCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The engine could not be reached (connection refused, DNS): nothing was processed.
    case unreachable(String)
    case timedOut(String)
    /// 5xx or 429: the engine is overloaded or broken for now.
    case serverError(status: Int, detail: String, retryAfter: Duration?)
    /// Any other 4xx: the request itself is wrong, so repeating it cannot help.
    case rejected(status: Int, detail: String)
    /// A 2xx answer that is not the documented JSON, or that reports `"status": "error"`.
    case invalidResponse(String)
    case cancelled

    public var isRetryable: Bool {
        switch self {
        case .unreachable, .timedOut, .serverError: true
        case .rejected, .invalidResponse, .cancelled: false
        }
    }

    var retryAfter: Duration? {
        if case .serverError(_, _, let retryAfter) = self { return retryAfter }
        return nil
    }

    /// What a client may be told: the kind of failure and the HTTP status, never the engine's
    /// own words, which can carry what it saw of the network (the engine is on the inside).
    public var publicDescription: String {
        switch self {
        case .unreachable: "engine unreachable"
        case .timedOut: "engine call timed out"
        case .serverError(let status, _, _): "engine answered HTTP \(status)"
        case .rejected(let status, _): "engine rejected the job with HTTP \(status)"
        case .invalidResponse: "invalid engine response"
        case .cancelled: "cancelled"
        }
    }

    /// Everything, for the worker's log.
    public var description: String {
        switch self {
        case .unreachable(let detail): "engine unreachable: \(detail)"
        case .timedOut(let detail): "engine call timed out: \(detail)"
        case .serverError(let status, let detail, _): "engine answered HTTP \(status): \(detail)"
        case .rejected(let status, let detail): "engine rejected the job with HTTP \(status): \(detail)"
        case .invalidResponse(let detail): "invalid engine response: \(detail)"
        case .cancelled: "cancelled"
        }
    }
}

/// The two input files of a job, fetched by the worker from the client's URLs.
public struct EngineInputs: Sendable {
    public var source: FetchedFile
    public var target: FetchedFile

    public init(source: FetchedFile, target: FetchedFile) {
        self.source = source
        self.target = target
    }
}

extension Swapline_V1_FaceSwapParams {
    /// Option names that never reach the engine: they would hand it a URL to fetch.
    static let reservedOptionNames: Set<String> = ["source_url", "target_url", "source", "target", "job"]

    /// The `job` part of `POST /process` (docs/facefusion-api.md): resolution and model, plus
    /// each option as a further field that never overrides them. No URL of the client's.
    func engineJob() -> [UInt8] {
        var fields: [String: String] = options.filter { !Self.reservedOptionNames.contains($0.key) }
        fields["resolution"] = resolution
        fields["model"] = model
        return Array((try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data())
    }

    /// The whole `POST /process` body, `multipart/form-data` with the parts `job`, `source`
    /// and `target`, and its content type.
    func engineRequestBody(_ inputs: EngineInputs, boundary: String = "swapline-" + UUID().uuidString) -> (contentType: String, body: [UInt8]) {
        var body: [UInt8] = []
        func part(_ name: String, filename: String?, contentType: String, _ bytes: [UInt8]) {
            var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\""
            if let filename { head += "; filename=\"\(filename)\"" }
            head += "\r\nContent-Type: \(contentType)\r\n\r\n"
            body += Array(head.utf8) + bytes + Array("\r\n".utf8)
        }
        part("job", filename: nil, contentType: "application/json", engineJob())
        for (name, file) in [("source", inputs.source), ("target", inputs.target)] {
            let fileExtension = FaceSwapProcessor.fileExtension(of: file.url.target) ?? MediaType.fileExtension(forContentType: file.contentType) ?? "bin"
            part(name, filename: "\(name).\(fileExtension)", contentType: file.contentType ?? MediaType.forFileExtension(fileExtension), file.bytes)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        return ("multipart/form-data; boundary=\(boundary)", body)
    }
}

/// The engine's FaceSwapResponse (DESIGN.md §1).
public struct FaceFusionOutput: Sendable, Equatable {
    public var outputPath: String
    public var processingTime: Double
    public var jobID: String
    /// Further outputs by format ("gif", "webp"), from metadata's `gif_url` / `webp_url`.
    public var extraOutputs: [String: String]
}

/// Speaks the engine HTTP API: `GET /health` and `POST /process`.
public struct FaceFusionClient: Sendable {
    let http: CurlHTTPClient
    /// Limit on one /process call (FaceFusion's default budget is 120 s).
    public var processTimeout: Duration
    public var healthTimeout: Duration = .seconds(5)

    public init(http: CurlHTTPClient, processTimeout: Duration = .seconds(120)) {
        self.http = http
        self.processTimeout = processTimeout
    }

    /// `nil` when the engine answers 200 with `"status": "ok"`, else why it is unhealthy.
    public func healthProblem(of engine: String) async -> String? {
        let request = HTTPRequest(url: engine + "/health", connectTimeout: healthTimeout, totalTimeout: healthTimeout, maxResponseBytes: 64 * 1024)
        do {
            let response = try await http.execute(request)
            guard response.status == 200 else { return "health check answered HTTP \(response.status)" }
            let body = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            guard let status = body?["status"] as? String, status == "ok" else { return "health check did not report status ok" }
            return nil
        } catch {
            return "health check failed: \(error)"
        }
    }

    /// Runs `job` on `inputs`: the engine gets the files, never the client's URLs. `jobID`
    /// names the job for `jobProgress` on engines that follow it (`swapline engine`).
    public func process(
        _ job: Swapline_V1_FaceSwapParams, inputs: EngineInputs, on engine: String, jobID: String? = nil
    ) async throws(EngineCallError) -> FaceFusionOutput {
        let (contentType, requestBody) = job.engineRequestBody(inputs)
        // The engine drops or kills the job once this try has given up on it.
        let timeoutMs = processTimeout.components.seconds * 1000 + processTimeout.components.attoseconds / 1_000_000_000_000_000
        var headers = [("content-type", contentType), (EngineContract.timeoutHeader, String(timeoutMs))]
        if let jobID { headers.append((EngineContract.jobIDHeader, jobID)) }
        let request = HTTPRequest(
            method: .post, url: engine + "/process", headers: HTTPHeaders(headers),
            body: requestBody, totalTimeout: processTimeout, maxResponseBytes: 1024 * 1024)
        let response: HTTPResponse
        do {
            response = try await http.execute(request)
        } catch {
            switch error {
            case .couldNotConnect(let detail): throw .unreachable(detail)
            case .timedOut(let detail): throw .timedOut(detail)
            case .cancelled, .clientShutDown: throw .cancelled
            case .responseTooLarge, .transport, .refusedAddress: throw .unreachable(error.description)
            }
        }
        let body = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        let detail = (body?["error"] as? String) ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        switch response.status {
        case 200..<300: break
        case 429, 500..<600:
            throw .serverError(status: response.status, detail: detail, retryAfter: Self.retryAfter(response.headers["retry-after"]))
        default:
            throw .rejected(status: response.status, detail: detail)
        }
        guard let body, (body["status"] as? String) == "success", let outputPath = body["output_path"] as? String, !outputPath.isEmpty else {
            throw .invalidResponse(detail)
        }
        var extras: [String: String] = [:]
        let metadata = body["metadata"] as? [String: Any] ?? [:]
        for format in ["gif", "webp"] {
            if let url = metadata["\(format)_url"] as? String, !url.isEmpty { extras[format] = url }
        }
        return FaceFusionOutput(
            outputPath: outputPath, processingTime: (body["processing_time"] as? Double) ?? 0,
            jobID: (body["job_id"] as? String) ?? "", extraOutputs: extras)
    }

    /// How far FaceFusion is with the job `jobID` (0 to 1), from `GET /jobs/{id}`; `nil` when
    /// the engine does not say (no such route, the job not started yet, no progress printed).
    public func jobProgress(_ jobID: String, on engine: String) async -> Double? {
        let request = HTTPRequest(url: engine + "/jobs/" + jobID, connectTimeout: healthTimeout, totalTimeout: healthTimeout, maxResponseBytes: 64 * 1024)
        guard let response = try? await http.execute(request), response.status == 200,
            let body = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any],
            let fraction = (body["progress"] as? [String: Any])?["fraction"] as? Double, (0...1).contains(fraction)
        else { return nil }
        return fraction
    }

    /// The longest Retry-After honoured; a longer one (up to any number of digits) reads as
    /// this. `RetryPolicy.maxDelay` caps the wait further.
    static let maxRetryAfterSeconds = 3600

    /// Retry-After in delta-seconds form (RFC 9110 §10.2.3: digits only), clamped to
    /// `maxRetryAfterSeconds`. Anything else (an HTTP date, which engines do not send, a sign,
    /// a fraction, `inf`, `nan`, `1e300`) is ignored and the computed backoff applies.
    static func retryAfter(_ value: String?) -> Duration? {
        guard let digits = value?.trimmingCharacters(in: .whitespaces), !digits.isEmpty,
            digits.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else { return nil }
        let significant = digits.drop { $0 == "0" }
        // More digits than the limit has cannot be within it (and would overflow Int).
        guard significant.count <= String(maxRetryAfterSeconds).count, let seconds = Int(significant.isEmpty ? "0" : significant)
        else { return .seconds(maxRetryAfterSeconds) }
        return .seconds(min(seconds, maxRetryAfterSeconds))
    }
}
