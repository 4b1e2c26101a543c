import Foundation
import Logging
import NIOPosix
import SwaplineCore

/// The engine's settings (`swapline engine`'s flags).
public struct EngineConfiguration: Sendable {
    /// The FaceFusion checkout: `facefusion.py` runs from it.
    public var faceFusionDirectory: String
    public var python = "python3"
    /// Outputs live in `{outputDirectory}/{job id}/`, served at `/outputs/{job id}/…`.
    public var outputDirectory: String
    /// Per-job input directories are made in here and removed when the job ends.
    public var workDirectory: String
    public var slots = 1
    /// `CUDA_VISIBLE_DEVICES` of each slot's runs, one per slot; empty: the runs inherit it.
    public var slotDevices: [String] = []
    public var queueLimit = 4
    public var jobTimeout: Duration = .seconds(100)
    /// The Retry-After of a 429.
    public var retryAfterSeconds = 10
    /// ffmpeg for the GIF and WebP renditions; `nil` makes none.
    public var ffmpeg: String?
    /// How long outputs are kept after their job, for the worker to download them.
    public var outputLifetime: Duration = .seconds(3600)

    public init(faceFusionDirectory: String, outputDirectory: String, workDirectory: String) {
        self.faceFusionDirectory = faceFusionDirectory
        self.outputDirectory = outputDirectory
        self.workDirectory = workDirectory
    }
}

/// An HTTP answer of the engine.
public struct EngineAnswer: Sendable {
    public var status: Int
    public var headers: [(String, String)] = []
    public var body: [UInt8]
    public var contentType = "application/json"

    static func json(_ status: Int, _ object: [String: Any], headers: [(String, String)] = []) -> EngineAnswer {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return EngineAnswer(status: status, headers: headers, body: Array(data))
    }

    static func error(_ status: Int, _ message: String, headers: [(String, String)] = []) -> EngineAnswer {
        json(status, ["status": "error", "error": message], headers: headers)
    }
}

/// The engine contract of docs/facefusion-api.md on top of `facefusion.py headless-run`.
public final class EngineService: Sendable {
    public let configuration: EngineConfiguration
    public let slots: EngineSlots
    public let jobs = EngineJobBoard()
    /// The FaceFusion and ffmpeg runs in progress.
    public let processGroups = RunningProcessGroups()
    /// Reads and writes request bodies, inputs and outputs off the event loops and the
    /// cooperative pool; its threads bound that file work at once. Started here; the owner
    /// shuts it down after the listener.
    public let fileThreads = NIOThreadPool(numberOfThreads: 2)
    /// FaceFusion's version, from its `facefusion/metadata.py`.
    public let faceFusionVersion: String
    /// Whether it takes output resolutions or scales, from its `facefusion/program.py`.
    public let outputSizing: OutputSizing
    private let logger: Logger

    public init(configuration: EngineConfiguration, logger: Logger) {
        self.configuration = configuration
        self.slots = EngineSlots(slots: configuration.slots, queueLimit: configuration.queueLimit)
        self.faceFusionVersion = Self.readVersion(faceFusionDirectory: configuration.faceFusionDirectory) ?? "unknown"
        let program = try? String(contentsOfFile: configuration.faceFusionDirectory + "/facefusion/program.py", encoding: .utf8)
        self.outputSizing = OutputSizing(programSource: program ?? "")
        self.logger = logger
        fileThreads.start()
    }

    /// `'version': '3.1.1'` in FaceFusion's metadata, read without starting Python.
    static func readVersion(faceFusionDirectory: String) -> String? {
        guard let text = try? String(contentsOfFile: faceFusionDirectory + "/facefusion/metadata.py", encoding: .utf8),
            let match = text.firstMatch(of: /'version'\s*:\s*'([^']{1,40})'/)
        else { return nil }
        return String(match.output.1)
    }

    public func health() async -> EngineAnswer {
        let full = await slots.isFull
        let body: [String: Any] = [
            "status": full ? "busy" : "ok", "ready": !full, "running": await slots.running, "queued": await slots.queued,
            "slots": slots.slots, "queue_limit": slots.queueLimit, "facefusion_version": faceFusionVersion,
            "renditions": configuration.ffmpeg != nil,
        ]
        // Anything but 200 + "ok" keeps workers away until a slot or queue place frees up.
        return .json(full ? 503 : 200, body)
    }

    public func jobStatus(_ id: String) -> EngineAnswer {
        guard let status = jobs.status(of: id) else { return .error(404, "no job '\(id.prefix(64))'") }
        var body: [String: Any] = ["job_id": id, "state": status.state.rawValue]
        if let progress = status.progress { body["progress"] = ["stage": progress.stage, "fraction": progress.fraction] }
        if let error = status.error { body["error"] = error }
        return .json(200, body)
    }

    /// An id a worker may choose: letters, digits, `_` and `-`, 1 to 64 of them.
    static func isValidJobID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// `POST /process`, its body spooled to `bodyFile`; `baseURL` is the scheme, host and port
    /// the request came to. A job still queued at `deadline` (the client's
    /// `X-Swapline-Timeout-Ms`, counted from the end of its upload) is dropped, a run still going
    /// then is killed: nobody waits for its answer any more.
    public func process(
        contentType: String, bodyFile: String, requestedJobID: String?, deadline: ContinuousClock.Instant? = nil, baseURL: String
    ) async -> EngineAnswer {
        let uploadDirectory = bodyFile + ".parts"
        defer { try? FileManager.default.removeItem(atPath: uploadDirectory) }
        guard let boundary = MultipartForm.boundary(ofContentType: contentType) else {
            return .error(415, "the request must be multipart/form-data with a boundary")
        }
        let form: UploadedForm
        do {
            try FileManager.default.createDirectory(atPath: uploadDirectory, withIntermediateDirectories: true)
            form = try await fileThreads.runIfActive {
                try UploadedForm.read(bodyFile: bodyFile, boundary: boundary, into: uploadDirectory)
            }
        } catch let malformed as MultipartForm.Malformed {
            return .error(400, malformed.description)
        } catch {
            logger.error("cannot split the upload into \(uploadDirectory): \(error)", metadata: ["stage": "upload"])
            return .error(500, "the engine cannot store the inputs")
        }
        guard let jobPart = form.fields["job"], let fields = (try? JSONSerialization.jsonObject(with: Data(jobPart))) as? [String: Any] else {
            return .error(400, "the 'job' part must be a JSON object")
        }
        var strings: [String: String] = [:]
        for (key, value) in fields {
            guard let text = value as? String else { return .error(400, "job field '\(key.prefix(64))' must be a string") }
            strings[key] = text
        }
        let job = EngineJob(fields: strings)
        if let problem = FaceFusionInvocation.problem(with: job, sizing: outputSizing) { return .error(400, problem) }
        guard let source = form.files["source"], let target = form.files["target"] else {
            return .error(400, "the request needs the parts 'source' and 'target'")
        }
        guard let sourceExtension = Self.fileExtension(source.head.filename), TargetKind(fileExtension: sourceExtension) == .image else {
            return .error(400, "the source must be an image file (.jpg, .png, .webp or .bmp)")
        }
        guard let targetExtension = Self.fileExtension(target.head.filename), let targetKind = TargetKind(fileExtension: targetExtension) else {
            return .error(400, "the target must be an image or video file (.jpg, .png, .webp, .bmp, .mp4, .mov, .mkv, .webm, .avi, .m4v)")
        }
        let jobID = requestedJobID ?? "job_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        guard Self.isValidJobID(jobID) else { return .error(400, "\(EngineContract.jobIDHeader) must be 1 to 64 letters, digits, '_' or '-'") }
        guard jobs.add(jobID) else { return .error(409, "job id '\(jobID)' is already in use") }

        let slot = await acquireSlot(before: deadline)
        if let slot, let deadline, ContinuousClock.now >= deadline {
            // Got the slot as the deadline passed: too late to start.
            await slots.release(slot)
        }
        guard let slot, deadline.map({ ContinuousClock.now < $0 }) ?? true else {
            if deadline.map({ ContinuousClock.now >= $0 }) ?? false {
                jobs.update(jobID) {
                    $0.state = .failed
                    $0.error = "the client's deadline passed while the job was queued"
                }
                logger.info("job \(jobID): dropped from the queue, its client's deadline passed")
                return .error(504, "the client's deadline (\(EngineContract.timeoutHeader)) passed while the job was queued")
            }
            if Task.isCancelled {
                // Its client (a worker that gave up) is gone: nobody would take the result.
                jobs.update(jobID) {
                    $0.state = .failed
                    $0.error = "the client disconnected while the job was queued"
                }
                logger.info("job dropped from the queue, its client disconnected", metadata: ["job_id": .string(jobID)])
                return .error(499, "the client disconnected while the job was queued")
            }
            jobs.update(jobID) {
                $0.state = .failed
                $0.error = "engine busy"
            }
            return .error(429, "engine busy: all \(slots.slots) slots and \(slots.queueLimit) queue places taken", headers: [("Retry-After", String(configuration.retryAfterSeconds))])
        }
        defer { Task { await slots.release(slot) } }
        jobs.update(jobID) { $0.state = .running }
        let answer = await run(
            job, jobID: jobID, slot: slot, deadline: deadline, source: source, sourceExtension: sourceExtension, target: target, targetExtension: targetExtension,
            targetKind: targetKind, baseURL: baseURL)
        jobs.update(jobID) {
            $0.state = answer.status == 200 ? .succeeded : .failed
            if answer.status != 200 { $0.error = "HTTP \(answer.status)" }
        }
        return answer
    }

    /// A slot (`EngineSlots.acquire`), given up when `deadline` passes first: `nil` then, as
    /// for a full queue or a client gone.
    private func acquireSlot(before deadline: ContinuousClock.Instant?) async -> Int? {
        guard let deadline else { return await slots.acquire() }
        let waiting = Task { [slots] in await slots.acquire() }
        let timer = Task {
            guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
            waiting.cancel()
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler { await waiting.value } onCancel: { waiting.cancel() }
    }

    /// The lowercased extension of an uploaded file's name, when it is a plain one.
    static func fileExtension(_ filename: String?) -> String? {
        guard let filename, let dot = filename.lastIndex(of: ".") else { return nil }
        let ext = filename[filename.index(after: dot)...].lowercased()
        return (1...5).contains(ext.count) && ext.utf8.allSatisfy(\.isASCIIAlphanumeric) ? ext : nil
    }

    private func run(
        _ job: EngineJob, jobID: String, slot: Int, deadline: ContinuousClock.Instant?, source: UploadedForm.UploadedFile, sourceExtension: String,
        target: UploadedForm.UploadedFile, targetExtension: String,
        targetKind: TargetKind, baseURL: String
    ) async -> EngineAnswer {
        let started = ContinuousClock.now
        let files = FileManager.default
        let workDirectory = configuration.workDirectory + "/" + jobID
        let outputDirectory = configuration.outputDirectory + "/" + jobID
        defer { try? files.removeItem(atPath: workDirectory) }
        removeExpiredOutputs()
        let sourcePath = workDirectory + "/source." + sourceExtension
        let targetPath = workDirectory + "/target." + targetExtension
        let outputName = "result." + (targetKind == .image ? "jpg" : targetExtension)
        do {
            try files.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
            try files.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            try files.moveItem(atPath: source.path, toPath: sourcePath)
            try files.moveItem(atPath: target.path, toPath: targetPath)
        } catch {
            logger.error("cannot store the job's inputs: \(error)", metadata: ["job_id": .string(jobID), "stage": "input"])
            return .error(500, "the engine cannot store the inputs")
        }
        let arguments = FaceFusionInvocation.arguments(
            for: job, source: sourcePath, target: targetPath, output: outputDirectory + "/" + outputName, targetKind: targetKind,
            workDirectory: workDirectory)
        logger.info("job runs \(configuration.python) \(arguments.joined(separator: " "))", metadata: ["job_id": .string(jobID)])
        let timeout = deadline.map { min(configuration.jobTimeout, $0 - .now) } ?? configuration.jobTimeout
        var runner = SupervisedProcess(
            executable: configuration.python, directory: configuration.faceFusionDirectory, timeout: timeout, groups: processGroups)
        // Python buffers a pipe's output in blocks; progress must arrive as it is printed.
        runner.environment["PYTHONUNBUFFERED"] = "1"
        if configuration.slotDevices.indices.contains(slot) { runner.environment["CUDA_VISIBLE_DEVICES"] = configuration.slotDevices[slot] }
        let exit: ProcessExit
        do {
            exit = try await runner.run(arguments) { [jobs] progress in jobs.update(jobID) { $0.progress = progress } }
        } catch {
            logger.error("job cannot start \(configuration.python): \(error)", metadata: ["job_id": .string(jobID), "stage": "engine"])
            return .error(500, "the engine cannot start FaceFusion")
        }
        switch exit {
        case .exited(0, _):
            break
        case .exited(2, let tail):
            return .error(400, "FaceFusion refused the job (exit code 2):\n" + tail)
        case .exited(let code, let tail):
            return .error(500, "FaceFusion failed (exit code \(code)):\n" + tail)
        case .signalled(let signal, let tail):
            return .error(500, "FaceFusion was killed by signal \(signal):\n" + tail)
        case .timedOut(let tail) where timeout < configuration.jobTimeout:
            return .error(504, "FaceFusion ran past the client's deadline (\(EngineContract.timeoutHeader)) and was killed:\n" + tail)
        case .timedOut(let tail):
            return .error(504, "FaceFusion ran past the job timeout of \(configuration.jobTimeout) and was killed:\n" + tail)
        }
        guard files.fileExists(atPath: outputDirectory + "/" + outputName) else {
            return .error(500, "FaceFusion exited 0 but wrote no output")
        }
        let outputURL = "\(baseURL)/outputs/\(jobID)/"
        var metadata: [String: String] = [:]
        for format in await renditions(of: outputDirectory + "/" + outputName, jobID: jobID) {
            metadata["\(format)_url"] = outputURL + "result." + format
        }
        let seconds = (ContinuousClock.now - started) / .milliseconds(1) / 1000
        return .json(
            200,
            ["status": "success", "output_path": outputURL + outputName, "processing_time": seconds, "job_id": jobID, "metadata": metadata])
    }

    /// The GIF and WebP renditions ffmpeg made of `output` (FaceFusion writes neither).
    private func renditions(of output: String, jobID: String) async -> [String] {
        guard let ffmpeg = configuration.ffmpeg else { return [] }
        var made: [String] = []
        let base = (output as NSString).deletingPathExtension
        for format in ["gif", "webp"] {
            let runner = SupervisedProcess(executable: ffmpeg, directory: configuration.workDirectory, timeout: configuration.jobTimeout, groups: processGroups)
            let exit = try? await runner.run(["-nostdin", "-y", "-loglevel", "error", "-i", output, base + "." + format]) { _ in }
            if case .exited(0, _) = exit {
                made.append(format)
            } else {
                logger.warning("ffmpeg made no \(format) rendition: \(String(describing: exit))", metadata: ["job_id": .string(jobID), "stage": "rendition"])
            }
        }
        return made
    }

    /// Output directories of jobs that ended more than `outputLifetime` ago: face images are
    /// kept only as long as a worker needs to fetch them.
    private func removeExpiredOutputs() {
        let files = FileManager.default
        let cutoff = Date().addingTimeInterval(-Double(configuration.outputLifetime.components.seconds))
        for name in (try? files.contentsOfDirectory(atPath: configuration.outputDirectory)) ?? [] {
            let path = configuration.outputDirectory + "/" + name
            guard let modified = (try? files.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < cutoff else { continue }
            try? files.removeItem(atPath: path)
        }
    }

    /// The path components of `GET /outputs/{job id}/result.{ext}` under the output directory;
    /// `nil` (404) for any other path.
    public static func outputFileComponents(_ path: String) -> [String]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard segments.count == 2, isValidJobID(segments[0]),
            segments[1].hasPrefix("result."), let ext = fileExtension(segments[1]), segments[1] == "result." + ext
        else { return nil }
        return segments
    }
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
