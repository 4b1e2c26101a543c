import CurlHTTP
import Foundation
import SwaplineCore
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

/// A processing failure: the stage (input, health, facefusion, download, upload) and why.
/// `description` is what the task's `error` says; `detail` goes to the worker's log only.
public struct TaskFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var stage: String
    public var reason: String
    /// What must not reach the client: an engine's own error text, addresses a name resolved
    /// to, what a connection attempt met.
    public var detail: String?

    public init(stage: String, reason: String, detail: String? = nil) {
        self.stage = stage
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(stage): \(reason)" }

    /// The failure as reported; `detail` is not part of it.
    public static func == (lhs: TaskFailure, rhs: TaskFailure) -> Bool {
        lhs.stage == rhs.stage && lhs.reason == rhs.reason
    }
}

/// `face_swap`: the inputs fetched from the client's URLs under the URL policy, health check,
/// FaceFusion `/process` with retries on those files, download of every output from the
/// engine's own host into temporary files, concurrent upload to the storage chain.
public struct FaceSwapProcessor: TaskProcessor {
    public var workflow: String { "face_swap" }
    let engines: EnginePool
    let faceFusion: FaceFusionClient
    /// Fetches the task's source and target: the only requests to URLs a client chose.
    let inputs: ClientURLFetcher
    /// Downloads the engine's outputs.
    let http: CurlHTTPClient
    let storage: ResultStorageChain
    let retry: RetryPolicy
    /// Largest output file accepted.
    let maxOutputBytes: Int
    /// FaceFusion's output directory when it runs on this machine: outputs under
    /// `{engine}/outputs/` are read from here instead of downloaded.
    let engineOutputDirectory: String?
    /// Hears every FaceFusion `/process` try.
    let metrics: WorkerMetrics?

    public init(
        engines: EnginePool, faceFusion: FaceFusionClient, inputs: ClientURLFetcher, http: CurlHTTPClient, storage: ResultStorageChain,
        retry: RetryPolicy = RetryPolicy(), maxOutputBytes: Int = 100 * 1024 * 1024, engineOutputDirectory: String? = nil,
        metrics: WorkerMetrics? = nil
    ) {
        self.engines = engines
        self.faceFusion = faceFusion
        self.inputs = inputs
        self.http = http
        self.storage = storage
        self.retry = retry
        self.maxOutputBytes = maxOutputBytes
        self.engineOutputDirectory = engineOutputDirectory
        self.metrics = metrics
    }

    public func process(_ task: Swapline_V1_Task, progress: ProgressReporter) async throws(TaskFailure) -> Swapline_V1_TaskResult {
        let started = ContinuousClock.now
        let job = task.params ?? Swapline_V1_FaceSwapParams()

        await progress.report(0.02, "input")
        let files = try await fetchInputs(job)

        await progress.report(0.05, "health")
        let engine = try await healthyEngine()
        defer { engines.release(engine) }

        await progress.report(0.1, "facefusion")
        let output: FaceFusionOutput
        do {
            output = try await retry.run(
                onRetry: { attempt, error, delay in
                    await progress.report(0.1, "facefusion try \(attempt) failed (\(error.publicDescription)); retrying in \(delay)")
                },
                operation: { attempt throws(EngineCallError) in
                    // An id per try: an engine keeps a failed try's id, and another worker may
                    // run the same task after a lease expiry.
                    let jobID = "\(task.taskID)-\(attempt)-\(UUID().uuidString.prefix(8).lowercased())"
                    let watcher = Task { await reportEngineProgress(of: jobID, on: engine, to: progress) }
                    defer { watcher.cancel() }
                    let called = ContinuousClock.now
                    do throws(EngineCallError) {
                        let output = try await faceFusion.process(job, inputs: files, on: engine, jobID: jobID)
                        metrics?.engineCallEnded(engine: engine, succeeded: true, after: called.duration(to: .now))
                        return output
                    } catch {
                        metrics?.engineCallEnded(engine: engine, succeeded: false, after: called.duration(to: .now))
                        throw error
                    }
                })
        } catch {
            if case .unreachable = error { engines.markUnhealthy(engine, problem: error.description) }
            throw TaskFailure(stage: "facefusion", reason: error.publicDescription, detail: error.description)
        }

        await progress.report(0.7, "download")
        // The main output keeps the target's kind: an image is a jpg, a video keeps its container.
        let mainFormat = Self.fileExtension(of: output.outputPath) ?? "jpg"
        var sources: [String: String] = [:]
        for (format, url) in output.extraOutputs { sources[format] = url }
        sources[mainFormat] = output.outputPath
        let downloads = try await DownloadDirectory.create()
        defer { downloads.remove() }
        let outputs = try await download(sources, from: engine, into: downloads)

        await progress.report(0.85, "upload")
        let stored = try await upload(outputs, taskID: task.taskID)
        let processingTime = started.duration(to: .now)
        return Swapline_V1_TaskResult(
            outputURL: stored[mainFormat]?.url ?? "", outputs: stored.mapValues(\.url),
            processingTime: Double(processingTime.components.seconds) + Double(processingTime.components.attoseconds) / 1e18,
            jobID: output.jobID, storageProvider: Self.providerSummary(stored), outputProviders: stored.mapValues(\.provider))
    }

    /// `storage_provider`: the one provider that stored every output, or, when the chain fell
    /// back for some, `format:provider` per output (e.g. "gif:local,jpg:s3"); just the providers
    /// ("local,s3") when that list would pass the field's size limit (`output_providers` then
    /// carries the whole map).
    static func providerSummary(_ stored: [String: StoredFile]) -> String {
        let providers = stored.mapValues(\.provider)
        return TaskOutput(outputs: stored.mapValues(\.url), storageProvider: TaskOutput.storageProviderList(of: providers))
            .storageProviderSummary(fittingIn: MessageLimits.nameBytes)
    }

    /// Source and target at once, each through the URL policy.
    private func fetchInputs(_ job: Swapline_V1_FaceSwapParams) async throws(TaskFailure) -> EngineInputs {
        let inputs = self.inputs
        func fetch(_ field: String, _ url: String) async -> Result<FetchedFile, TaskFailure> {
            do {
                return .success(try await inputs.fetch(url))
            } catch {
                return .failure(TaskFailure(stage: "input", reason: "params.\(field) \(error.reason)", detail: error.detail))
            }
        }
        async let source = fetch("source_url", job.sourceURL)
        async let target = fetch("target_url", job.targetURL)
        let (sourceResult, targetResult) = await (source, target)
        return EngineInputs(source: try sourceResult.get(), target: try targetResult.get())
    }

    /// The least-loaded engine that answers its health check right now.
    /// While FaceFusion runs the job, its progress as PROCESSING updates between the
    /// `facefusion` (0.1) and `download` (0.7) stages, checked every second until cancelled.
    private func reportEngineProgress(of jobID: String, on engine: String, to progress: ProgressReporter) async {
        var reported: Double?
        while (try? await Task.sleep(for: .seconds(1))) != nil {
            guard let fraction = await faceFusion.jobProgress(jobID, on: engine), fraction != reported, !Task.isCancelled else { continue }
            reported = fraction
            await progress.report(Float(0.1 + 0.6 * fraction), "facefusion \(Int(fraction * 100))%")
        }
    }

    private func healthyEngine() async throws(TaskFailure) -> String {
        var problems: [String] = []
        while let engine = engines.acquire() {
            guard let problem = await engines.verify(engine) else { return engine }
            engines.release(engine)
            problems.append("\(engine): \(problem)")
        }
        // Which engines there are and what their checks met is for the log, not the client.
        throw TaskFailure(
            stage: "health", reason: "no healthy FaceFusion engine", detail: problems.isEmpty ? nil : problems.joined(separator: "; "))
    }

    private func download(_ sources: [String: String], from engine: String, into downloads: DownloadDirectory) async throws(TaskFailure) -> [OutputFile] {
        // The engine is trusted to name its own files, not to send the worker elsewhere.
        let engineURL = try? CheckedURL.parse(engine).get()
        for url in sources.values {
            guard let engineURL, let output = try? CheckedURL.parse(url).get(), output.isSameOrigin(as: engineURL) else {
                throw TaskFailure(
                    stage: "download", reason: "the engine named an output outside its own host",
                    detail: "engine \(engine) returned output URL \(url)")
            }
        }
        do {
            return try await withThrowingTaskGroup(of: OutputFile.self) { group in
                for (format, url) in sources {
                    group.addTask { try await fetch(url, format: Self.fileExtension(of: url) ?? format, from: engine, into: downloads) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        } catch {
            // The engine's addresses and what the connection met stay in the log.
            let reason = (error as? DownloadError)?.publicReason ?? "could not download an output from the engine"
            throw TaskFailure(stage: "download", reason: reason, detail: "\(error)")
        }
    }

    /// The output at `url` as a file: the engine's own file when it runs on this machine,
    /// otherwise downloaded into `downloads`, written as it arrives.
    private func fetch(_ url: String, format: String, from engine: String, into downloads: DownloadDirectory) async throws -> OutputFile {
        let maxOutputBytes = self.maxOutputBytes
        if let directory = engineOutputDirectory, url.hasPrefix(engine + "/outputs/") {
            let relative = String(url.dropFirst((engine + "/outputs/").count))
            guard !relative.split(separator: "/").contains("..") else { throw DownloadError(url: url, reason: "path escapes the output directory") }
            let path = URL(fileURLWithPath: directory).appendingPathComponent(relative).path
            let size = try await BlockingIO.run { (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
            guard size <= maxOutputBytes else { throw DownloadError(url: url, reason: "larger than \(maxOutputBytes) bytes") }
            return OutputFile(format: format, path: path, size: Int64(size))
        }
        let path = downloads.path(for: format)
        let writer = try await BufferedFileWriter.create(path)
        do {
            // Redirects are not followed: an output is where the engine said it is.
            for try await part in http.stream(HTTPRequest(url: url, maxResponseBytes: maxOutputBytes)) {
                switch part {
                case .head(let head):
                    guard head.status == 200 else { throw DownloadError(url: url, reason: "HTTP \(head.status)") }
                case .body(let bytes): try await writer.write(bytes)
                case .trailers: break
                }
            }
            let size = try await writer.close()
            return OutputFile(format: format, path: path, size: size)
        } catch {
            _ = try? await writer.close()
            if let error = error as? HTTPClientError, case .responseTooLarge = error {
                throw DownloadError(url: url, reason: "larger than \(maxOutputBytes) bytes")
            }
            throw error
        }
    }

    private func upload(_ files: [OutputFile], taskID: String) async throws(TaskFailure) -> [String: StoredFile] {
        let storage = self.storage
        do {
            return try await withThrowingTaskGroup(of: (String, StoredFile).self) { group in
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
    var publicReason: String { "an output of the engine: \(reason)" }
}
