import CurlHTTP
import Foundation
import SwaplineMessages

/// Runs the tasks of one workflow. The worker fetches only workflows it has a processor for.
public protocol TaskProcessor: Sendable {
    var workflow: String { get }
    /// Does the work, reporting stages through `progress`; throws `TaskFailure` naming the stage.
    func process(_ task: Swapline_V1_Task, progress: ProgressReporter) async throws(TaskFailure) -> Swapline_V1_TaskResult
}

/// Sends PROCESSING updates (which also renew the task's lease).
public struct ProgressReporter: Sendable {
    let send: @Sendable (_ progress: Float, _ stage: String) async -> Void

    public init(_ send: @escaping @Sendable (_ progress: Float, _ stage: String) async -> Void) { self.send = send }

    public func report(_ progress: Float, _ stage: String) async { await send(progress, stage) }
}

/// A processing failure: the stage (health, facefusion, download, upload) and why.
public struct TaskFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var stage: String
    public var reason: String

    public init(stage: String, reason: String) {
        self.stage = stage
        self.reason = reason
    }

    public var description: String { "\(stage): \(reason)" }
}

/// `face_swap`: health check, FaceFusion `/process` with retries, download of every output,
/// concurrent upload to storage.
public struct FaceSwapProcessor: TaskProcessor {
    public var workflow: String { "face_swap" }
    let engines: EnginePool
    let faceFusion: FaceFusionClient
    let http: CurlHTTPClient
    let storage: any ResultStorage
    let retry: RetryPolicy
    /// Largest output file accepted.
    let maxOutputBytes: Int
    /// FaceFusion's output directory when it runs on this machine: outputs under
    /// `{engine}/outputs/` are read from here instead of downloaded.
    let engineOutputDirectory: String?

    public init(
        engines: EnginePool, faceFusion: FaceFusionClient, http: CurlHTTPClient, storage: any ResultStorage,
        retry: RetryPolicy = RetryPolicy(), maxOutputBytes: Int = 100 * 1024 * 1024, engineOutputDirectory: String? = nil
    ) {
        self.engines = engines
        self.faceFusion = faceFusion
        self.http = http
        self.storage = storage
        self.retry = retry
        self.maxOutputBytes = maxOutputBytes
        self.engineOutputDirectory = engineOutputDirectory
    }

    public func process(_ task: Swapline_V1_Task, progress: ProgressReporter) async throws(TaskFailure) -> Swapline_V1_TaskResult {
        let started = ContinuousClock.now
        let job = task.params ?? Swapline_V1_FaceSwapParams()

        await progress.report(0.05, "health")
        let engine = try await healthyEngine()
        defer { engines.release(engine) }

        await progress.report(0.1, "facefusion")
        let output: FaceFusionOutput
        do {
            output = try await retry.run(
                onRetry: { attempt, error, delay in
                    await progress.report(0.1, "facefusion try \(attempt) failed (\(error)); retrying in \(delay)")
                },
                operation: { _ throws(EngineCallError) in try await faceFusion.process(job, on: engine) })
        } catch {
            if case .unreachable = error { engines.markUnhealthy(engine, problem: error.description) }
            throw TaskFailure(stage: "facefusion", reason: error.description)
        }

        await progress.report(0.7, "download")
        var sources = ["jpg": output.outputPath]
        for (format, url) in output.extraOutputs { sources[format] = url }
        let files = try await download(sources, from: engine)

        await progress.report(0.85, "upload")
        let urls = try await upload(files, taskID: task.taskID)
        let processingTime = started.duration(to: .now)
        return Swapline_V1_TaskResult(
            outputURL: urls["jpg"] ?? urls.values.first ?? "", outputs: urls,
            processingTime: Double(processingTime.components.seconds) + Double(processingTime.components.attoseconds) / 1e18,
            jobID: output.jobID, storageProvider: storage.providerName)
    }

    /// The least-loaded engine that answers its health check right now.
    private func healthyEngine() async throws(TaskFailure) -> String {
        var problems: [String] = []
        while let engine = engines.acquire() {
            guard let problem = await engines.verify(engine) else { return engine }
            engines.release(engine)
            problems.append("\(engine): \(problem)")
        }
        throw TaskFailure(stage: "health", reason: problems.isEmpty ? "no healthy FaceFusion engine" : problems.joined(separator: "; "))
    }

    private func download(_ sources: [String: String], from engine: String) async throws(TaskFailure) -> [OutputFile] {
        do {
            return try await withThrowingTaskGroup(of: OutputFile.self) { group in
                for (format, url) in sources {
                    group.addTask { OutputFile(format: Self.fileExtension(of: url) ?? format, bytes: try await fetch(url, from: engine)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        } catch {
            throw TaskFailure(stage: "download", reason: "\(error)")
        }
    }

    private func fetch(_ url: String, from engine: String) async throws -> [UInt8] {
        if let directory = engineOutputDirectory, url.hasPrefix(engine + "/outputs/") {
            let relative = String(url.dropFirst((engine + "/outputs/").count))
            guard !relative.split(separator: "/").contains("..") else { throw DownloadError(url: url, reason: "path escapes the output directory") }
            let path = URL(fileURLWithPath: directory).appendingPathComponent(relative).path
            let maxOutputBytes = self.maxOutputBytes
            return try await BlockingIO.run {
                let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                guard size <= maxOutputBytes else { throw DownloadError(url: url, reason: "larger than \(maxOutputBytes) bytes") }
                return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            }
        }
        let response = try await http.execute(HTTPRequest(url: url, maxResponseBytes: maxOutputBytes))
        guard response.status == 200 else { throw DownloadError(url: url, reason: "HTTP \(response.status)") }
        return response.body
    }

    private func upload(_ files: [OutputFile], taskID: String) async throws(TaskFailure) -> [String: String] {
        let storage = self.storage
        do {
            return try await withThrowingTaskGroup(of: (String, String).self) { group in
                for file in files { group.addTask { (file.format, try await storage.store(file, taskID: taskID)) } }
                return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
        } catch {
            throw TaskFailure(stage: "upload", reason: "\(error)")
        }
    }

    static func fileExtension(of url: String) -> String? {
        let path = url.split(separator: "?").first.map(String.init) ?? url
        guard let name = path.split(separator: "/").last, let dot = name.lastIndex(of: ".") else { return nil }
        let ext = name[name.index(after: dot)...].lowercased()
        return ext.isEmpty || ext.count > 5 ? nil : ext
    }
}

struct DownloadError: Error, CustomStringConvertible {
    let url: String
    let reason: String
    var description: String { "\(url): \(reason)" }
}
