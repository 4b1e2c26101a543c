import Foundation
import SwaplineCore

/// One output file of a task, ready to be stored.
public struct OutputFile: Sendable {
    /// File extension and format name: "jpg", "gif", "webp", "mp4", ...
    public var format: String
    public var bytes: [UInt8]

    public init(format: String, bytes: [UInt8]) {
        self.format = format
        self.bytes = bytes
    }

    public var contentType: String { MediaType.forFileExtension(format) }
}

/// Where finished outputs go. Cloud backends (GCS, R2, Cloudflare Images) implement this too.
public protocol ResultStorage: Sendable {
    /// The `storage_provider` reported with results, e.g. "local", "gcs".
    var providerName: String { get }
    /// Stores `file` as the result of `taskID` in `file.format` and returns its public URL.
    func store(_ file: OutputFile, taskID: String) async throws -> String
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

    public func store(_ file: OutputFile, taskID: String) async throws -> String {
        let name = "result.\(file.format)"
        let key = Self.unguessableKey()
        let folder = URL(fileURLWithPath: directory).appendingPathComponent(taskID, isDirectory: true)
            .appendingPathComponent(key, isDirectory: true)
        try await BlockingIO.run {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            // Atomic: the server never serves a half-written file.
            try Data(file.bytes).write(to: folder.appendingPathComponent(name), options: .atomic)
        }
        return "\(publicBaseURL)/outputs/\(taskID)/\(key)/\(name)"
    }

    private static func unguessableKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let digits = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }.joined()
    }
}

/// Parses `--storage` values; only `local:DIR` exists so far.
public enum ResultStorageSpec {
    public static func make(_ spec: String, publicBaseURL: String) throws -> any ResultStorage {
        if spec.hasPrefix("local:"), spec.count > "local:".count {
            return LocalResultStorage(directory: String(spec.dropFirst("local:".count)), publicBaseURL: publicBaseURL)
        }
        throw StorageSpecError(spec: spec)
    }
}

public struct StorageSpecError: Error, CustomStringConvertible {
    public let spec: String
    public var description: String { "unsupported storage \"\(spec)\" (expected local:DIR)" }
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
