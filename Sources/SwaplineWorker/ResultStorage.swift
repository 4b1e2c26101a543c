import CurlHTTP
import Foundation
import SwaplineCore

/// One output file of a task, on disk, ready to be stored. Backends stream it from `path`.
public struct OutputFile: Sendable {
    /// File extension and format name: "jpg", "gif", "webp", "mp4", ...
    public var format: String
    public var path: String
    public var size: Int64

    public init(format: String, path: String, size: Int64) {
        self.format = format
        self.path = path
        self.size = size
    }

    public var contentType: String { MediaType.forFileExtension(format) }
}

/// Why a backend did not store (or delete) a file: it refused the file, or failed every try
/// (down, throttling, refusing our credentials). The next backend of the chain gets the file.
public struct StorageFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var provider: String
    /// What the client may read: the HTTP status and the provider's error code, never
    /// credentials or addresses.
    public var reason: String

    public init(provider: String, reason: String) {
        self.provider = provider
        self.reason = reason
    }

    public var description: String { "\(provider): \(reason)" }
}

/// Where a stored file ended up.
public struct StoredFile: Sendable, Equatable {
    public var url: String
    /// The `providerName` of the backend that took it.
    public var provider: String
}

/// Where finished outputs go. S3-compatible stores, Cloudflare Images and local files implement
/// it; a backend refuses files it cannot hold so the chain moves on.
public protocol ResultStorage: Sendable {
    /// The `storage_provider` reported with results, e.g. "local", "s3".
    var providerName: String { get }
    /// Stores `file` as the result of `taskID` and returns the URL it is published at.
    func store(_ file: OutputFile, taskID: String) async throws(StorageFailure) -> String
    /// Deletes the stored file `url` was published at, when it is one of this backend's (an
    /// already deleted one counts as deleted); false when `url` is not this backend's.
    func delete(url: String) async throws(StorageFailure) -> Bool
}

/// The `--storage` backends in their fallback order: a file goes to the first that takes it.
public struct ResultStorageChain: Sendable {
    public let backends: [any ResultStorage]
    /// Hears every try of `store` (provider, bytes, outcome, duration).
    let metrics: WorkerMetrics?

    public init(_ backends: [any ResultStorage], metrics: WorkerMetrics? = nil) {
        precondition(!backends.isEmpty, "a storage chain needs at least one backend")
        self.backends = backends
        self.metrics = metrics
    }

    /// Stores `file` on the first backend that takes it; when none does, the failure names
    /// what each backend answered.
    public func store(_ file: OutputFile, taskID: String) async throws(StorageFailure) -> StoredFile {
        var failures: [StorageFailure] = []
        for backend in backends {
            let started = ContinuousClock.now
            do {
                let stored = StoredFile(url: try await backend.store(file, taskID: taskID), provider: backend.providerName)
                metrics?.uploadEnded(provider: backend.providerName, bytes: file.size, succeeded: true, after: started.duration(to: .now))
                return stored
            } catch {
                metrics?.uploadEnded(provider: backend.providerName, bytes: file.size, succeeded: false, after: started.duration(to: .now))
                failures.append(error)
            }
        }
        if failures.count == 1 { throw failures[0] }
        throw StorageFailure(
            provider: backends.map(\.providerName).joined(separator: ","),
            reason: failures.map(\.description).joined(separator: "; "))
    }
}

/// Files in a local directory, served by the Swapline server at `{publicBaseURL}/outputs/...`.
///
/// Each file goes to `{taskID}/{key}/result.{format}`, `key` 128 random bits from the system's
/// CSPRNG: `/outputs/` needs no token (browsers and CDNs fetch the URLs as they are), so a
/// result is readable only by whoever was given its URL, not by anyone who knows or guesses a
/// task id.
public struct LocalResultStorage: ResultStorage {
    public let directory: String
    public let publicBaseURL: String
    public var providerName: String { "local" }

    public init(directory: String, publicBaseURL: String) {
        self.directory = directory
        self.publicBaseURL = publicBaseURL.hasSuffix("/") ? String(publicBaseURL.dropLast()) : publicBaseURL
    }

    public func store(_ file: OutputFile, taskID: String) async throws(StorageFailure) -> String {
        let name = "result.\(file.format)"
        let key = UnguessableKey.make()
        let folder = URL(fileURLWithPath: directory).appendingPathComponent(taskID, isDirectory: true)
            .appendingPathComponent(key, isDirectory: true)
        do {
            try await BlockingIO.run {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                // Copied under a hidden name, then renamed: the server never serves a half-written file.
                let partial = folder.appendingPathComponent(".\(name).partial")
                try FileManager.default.copyItem(at: URL(fileURLWithPath: file.path), to: partial)
                try FileManager.default.moveItem(at: partial, to: folder.appendingPathComponent(name))
            }
        } catch {
            throw StorageFailure(provider: providerName, reason: "could not write the file: \(error.localizedDescription)")
        }
        return "\(publicBaseURL)/outputs/\(taskID)/\(key)/\(name)"
    }

    /// Any URL whose path is `/outputs/{taskID}/{key}/{name}`, whatever its host: the server
    /// deleting it may know itself by another name than the workers' `--public-url`.
    public func delete(url: String) async throws(StorageFailure) -> Bool {
        guard let path = URLComponents(string: url)?.path, path.hasPrefix("/outputs/") else { return false }
        let parts = path.dropFirst("/outputs/".count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return false }
        let taskFolder = URL(fileURLWithPath: directory).appendingPathComponent(String(parts[0]), isDirectory: true)
        let keyFolder = taskFolder.appendingPathComponent(String(parts[1]), isDirectory: true)
        do {
            try await BlockingIO.run {
                let manager = FileManager.default
                if manager.fileExists(atPath: keyFolder.path) { try manager.removeItem(at: keyFolder) }
                // The task's folder goes with its last output.
                if (try? manager.contentsOfDirectory(atPath: taskFolder.path))?.isEmpty == true { try? manager.removeItem(at: taskFolder) }
            }
        } catch {
            throw StorageFailure(provider: providerName, reason: "could not delete \(path): \(error.localizedDescription)")
        }
        return true
    }
}

/// 128 random bits from the system's CSPRNG as 32 hex digits: the part of a result's path or
/// object key nobody can guess from the task id.
enum UnguessableKey {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let digits = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }.joined()
    }
}

/// Parses `--storage` values: `local:DIR`, `s3://BUCKET[/PREFIX]` (configured by `s3`) and
/// `cfimages:ACCOUNT_ID` (configured by `cloudflareImages`, the account taken from the spec).
public enum ResultStorageSpec {
    public static func make(
        _ spec: String, publicBaseURL: String, s3: S3Settings?, cloudflareImages: CloudflareImagesSettings? = nil, http: CurlHTTPClient
    ) throws -> any ResultStorage {
        if spec.hasPrefix("local:"), spec.count > "local:".count {
            return LocalResultStorage(directory: String(spec.dropFirst("local:".count)), publicBaseURL: publicBaseURL)
        }
        if spec.hasPrefix("s3://") {
            guard let s3 else { throw StorageSpecError(spec: spec, problem: "S3 storage is not configured") }
            return S3ResultStorage(location: try S3Location.parse(spec), settings: s3, http: http)
        }
        if spec.hasPrefix("cfimages:") {
            let account = try CloudflareImagesSettings.accountID(ofSpec: spec)
            guard let cloudflareImages else { throw StorageSpecError(spec: spec, problem: "Cloudflare Images is not configured") }
            return CloudflareImagesStorage(accountID: account, settings: cloudflareImages, http: http)
        }
        throw StorageSpecError(spec: spec, problem: "expected local:DIR, s3://BUCKET[/PREFIX] or cfimages:ACCOUNT_ID")
    }
}

public struct StorageSpecError: Error, CustomStringConvertible {
    public let spec: String
    public let problem: String
    public var description: String { "unsupported storage \"\(spec)\": \(problem)" }
}

/// Runs blocking file-system calls on a Dispatch thread, so they never hold a thread of the
/// Swift cooperative pool.
enum BlockingIO {
    static func run<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Swift.Result(catching: work)) }
        }
    }
}
