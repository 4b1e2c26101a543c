import Foundation

/// A task's private temporary directory for the engine's outputs, removed once they are stored.
struct DownloadDirectory: Sendable {
    let url: URL

    static func create() async throws(TaskFailure) -> DownloadDirectory {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swapline-outputs-\(UnguessableKey.make())", isDirectory: true)
        do {
            try await BlockingIO.run { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false) }
        } catch {
            throw TaskFailure(stage: "download", reason: "could not create a temporary directory", detail: "\(url.path): \(error)")
        }
        return DownloadDirectory(url: url)
    }

    /// One file per format: the engine names each format once.
    func path(for format: String) -> String { url.appendingPathComponent("result.\(format)").path }

    func remove() {
        let url = self.url
        DispatchQueue.global().async { try? FileManager.default.removeItem(at: url) }
    }
}

/// Writes a download to a file in 1 MiB batches, each written off the cooperative pool.
actor BufferedFileWriter {
    private let handle: FileHandle
    private var pending: [UInt8] = []
    private var written: Int64 = 0
    private var closed = false
    private static let batchBytes = 1 << 20

    private init(handle: FileHandle) { self.handle = handle }

    static func create(_ path: String) async throws -> BufferedFileWriter {
        let handle = try await BlockingIO.run {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
            guard let handle = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteUnknown) }
            return handle
        }
        return BufferedFileWriter(handle: handle)
    }

    func write(_ bytes: [UInt8]) async throws {
        pending += bytes
        if pending.count >= Self.batchBytes { try await flush() }
    }

    /// Flushes and closes; the file's size.
    @discardableResult
    func close() async throws -> Int64 {
        guard !closed else { return written }
        closed = true
        try await flush()
        let handle = self.handle
        try await BlockingIO.run { try handle.close() }
        return written
    }

    private func flush() async throws {
        guard !pending.isEmpty else { return }
        let batch = Data(pending)
        pending = []
        written += Int64(batch.count)
        let handle = self.handle
        try await BlockingIO.run { try handle.write(contentsOf: batch) }
    }
}
