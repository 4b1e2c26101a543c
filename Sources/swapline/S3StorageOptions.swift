import ArgumentParser
import CurlHTTP
import Foundation
import Logging
import SwaplineCore
import SwaplineWorker

/// Settings of `s3://` result storage, for `swapline worker` and `swapline serve --workers N`.
struct S3StorageOptions: ParsableArguments {
    @Option(help: "S3 endpoint URL (default: https://s3.<region>.amazonaws.com); e.g. https://<account>.r2.cloudflarestorage.com for R2, https://storage.googleapis.com for GCS.")
    var s3Endpoint: String?

    @Option(help: "S3 region the requests are signed for (R2: auto).")
    var s3Region = "us-east-1"

    @Flag(inversion: .prefixedNo, help: "Path-style object URLs (endpoint/bucket/key) instead of virtual-host style (bucket.endpoint/key).")
    var s3PathStyle = false

    @Option(help: "Public base URL of the bucket: results are published as <url>/<key>. Without it, results are presigned GET URLs.")
    var s3PublicURL: String?

    @Option(help: "Validity of presigned result URLs, in seconds (1 to 604800, 7 days).")
    var s3PresignSeconds = 86_400

    @Option(help: "Files larger than this many bytes go up as multipart uploads.")
    var s3MultipartThreshold: Int64 = 64 * 1024 * 1024

    @Option(help: "Part size of multipart uploads, in bytes (AWS, R2 and GCS need at least 5 MiB for all parts but the last).")
    var s3PartSize: Int64 = 16 * 1024 * 1024

    @Option(help: "Parts of one multipart upload sent at once.")
    var s3ParallelParts = 4

    @Option(help: "Tries of each S3 request on 5xx, throttling (503 SlowDown, 429) and connection failures.")
    var s3MaxAttempts = 4

    @Option(help: "Wait before the first retry of an S3 request, in ms; it doubles per try.")
    var s3RetryBaseMs: Int64 = 500

    func validate() throws {
        try FlagRange.check(s3PresignSeconds, "--s3-presign-seconds", in: 1...604_800)
        try FlagRange.check(s3MultipartThreshold, "--s3-multipart-threshold", in: 1...(5 << 40))
        try FlagRange.check(s3PartSize, "--s3-part-size", in: (64 << 10)...(5 << 30))
        try FlagRange.check(s3ParallelParts, "--s3-parallel-parts", in: 1...64)
        try FlagRange.check(s3MaxAttempts, "--s3-max-attempts", in: 1...20)
        try FlagRange.checkMilliseconds(s3RetryBaseMs, "--s3-retry-base-ms", allowZero: true)
        for url in [s3Endpoint, s3PublicURL].compactMap({ $0 }) where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ValidationError("S3 endpoint and public URL must be http:// or https:// URLs, got \(url)")
        }
    }

    /// The settings for `s3://` specs, credentials loaded from the environment or the shared
    /// credentials file; nil when no spec needs them.
    func settings(for specs: [String], environment: [String: String]) throws -> S3Settings? {
        guard specs.contains(where: { $0.hasPrefix("s3://") }) else { return nil }
        let credentials: AWSCredentials
        do {
            credentials = try AWSCredentials.load(environment: environment)
        } catch {
            throw ValidationError("S3 storage: \(error)")
        }
        return S3Settings(
            endpoint: s3Endpoint, region: s3Region, pathStyle: s3PathStyle, credentials: credentials, publicURL: s3PublicURL,
            presignExpiry: s3PresignSeconds, multipartThreshold: s3MultipartThreshold, partSize: s3PartSize,
            parallelParts: s3ParallelParts, retry: RetryPolicy(maxAttempts: s3MaxAttempts, baseDelay: .milliseconds(s3RetryBaseMs)))
    }
}

extension WorkerOptions {
    /// What the server deletes stored result files with: the backends the workers' `--storage`
    /// flags name (the server needs the same flags).
    func resultCleaner(defaultStorage: String) throws -> StoredResultCleaner {
        // The public base URL only shapes new local URLs; deleting reads URLs as stored.
        StoredResultCleaner(try storageChain(publicBaseURL: "", defaultStorage: defaultStorage, http: CurlHTTPClient()))
    }
}
