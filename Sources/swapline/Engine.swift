import ArgumentParser
import Foundation
import Logging
import NIOCore
import SwaplineEngine

struct Engine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the FaceFusion engine API (docs/facefusion-api.md) with a local FaceFusion 3.x install.",
        discussion: """
            Each POST /process runs 'python facefusion.py headless-run' in --facefusion on the \
            uploaded files. Prints 'swapline engine listening on HOST:PORT' on stdout once it \
            accepts requests; SIGTERM or SIGINT stops it (running FaceFusion processes are killed \
            with their process group).
            """)

    @Option(help: "The FaceFusion directory (the one holding facefusion.py).")
    var facefusion: String

    @Option(help: "The Python interpreter of FaceFusion's environment.")
    var python = "python3"

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port).")
    var port = 8000

    @Option(help: "FaceFusion runs at once (one per GPU).")
    var slots = 1

    @Option(help: "The CUDA_VISIBLE_DEVICES of one slot's FaceFusion runs, e.g. a GPU index; give one per slot, in slot order (default: runs inherit the engine's).")
    var slotDevice: [String] = []

    @Option(help: "Jobs waiting for a slot beyond which POST /process answers 429.")
    var queueLimit = 4

    @Option(help: "The Retry-After of a 429, in seconds.")
    var retryAfterSeconds = 10

    @Option(help: "A FaceFusion run still going after this long is killed with its process group, in ms; keep it below the workers' --engine-timeout-ms (raise both for videos).")
    var jobTimeoutMs: Int64 = 100_000

    @Option(help: "Where outputs are written and served from at /outputs/ (default: <work dir>/outputs).")
    var outputDir: String?

    @Option(help: "Where per-job input directories are made (and removed after each job).")
    var workDir = "./swapline-engine"

    @Option(help: "How long outputs are kept after their job for workers to download, in ms.")
    var outputLifetimeMs: Int64 = 3_600_000

    @Option(help: "ffmpeg for the GIF and WebP renditions ('none': no renditions).")
    var ffmpeg = "/usr/bin/ffmpeg"

    @Option(help: "Largest POST /process body accepted, in bytes (the worker sends two inputs of up to --max-input-bytes each).")
    var maxRequestBytes = 256 * 1024 * 1024

    @Option(help: "Most connections open at once; more are closed as soon as they are accepted.")
    var maxConnections = 256

    @Option(help: "Time a request head may take from its first byte, in ms; then 408 and the connection closes.")
    var headerTimeoutMs: Int64 = 10_000

    @Option(help: "Time an unfinished request body may go without a byte, in ms; then 408 and the connection closes.")
    var bodyTimeoutMs: Int64 = 30_000

    @Option(help: "Time a connection may wait for its next request (or its first), in ms; then it is closed.")
    var idleTimeoutMs: Int64 = 60_000

    @Option(help: "A client downloading an output may take no byte of it for this long before the connection is closed, in ms.")
    var sendTimeoutMs: Int64 = 30_000

    @OptionGroup(title: "Logging") var logging: LogOptions

    func validate() throws {
        guard FileManager.default.fileExists(atPath: facefusion + "/facefusion.py") else {
            throw ValidationError("--facefusion \(facefusion) holds no facefusion.py")
        }
        try FlagRange.check(port, "--port", in: 0...65535)
        try FlagRange.check(slots, "--slots", in: 1...FlagRange.maxThreadsOrSlots)
        if !slotDevice.isEmpty, slotDevice.count != slots {
            throw ValidationError("give one --slot-device per slot: \(slotDevice.count) for --slots \(slots)")
        }
        try FlagRange.check(queueLimit, "--queue-limit", in: 0...FlagRange.maxThreadsOrSlots)
        try FlagRange.check(retryAfterSeconds, "--retry-after-seconds", in: 1...3600)
        try FlagRange.checkMilliseconds(jobTimeoutMs, "--job-timeout-ms")
        try FlagRange.checkMilliseconds(outputLifetimeMs, "--output-lifetime-ms")
        try FlagRange.check(maxRequestBytes, "--max-request-bytes", in: 1...(1 << 40))
        try FlagRange.check(maxConnections, "--max-connections", in: 1...65536)
        try FlagRange.checkMilliseconds(headerTimeoutMs, "--header-timeout-ms")
        try FlagRange.checkMilliseconds(bodyTimeoutMs, "--body-timeout-ms")
        try FlagRange.checkMilliseconds(idleTimeoutMs, "--idle-timeout-ms")
        try FlagRange.checkMilliseconds(sendTimeoutMs, "--send-timeout-ms")
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "swapline.engine")
        let workDirectory = URL(fileURLWithPath: workDir).standardizedFileURL.path
        var configuration = EngineConfiguration(
            faceFusionDirectory: URL(fileURLWithPath: facefusion).standardizedFileURL.path,
            outputDirectory: URL(fileURLWithPath: outputDir ?? workDir + "/outputs").standardizedFileURL.path,
            workDirectory: workDirectory + "/jobs")
        configuration.python = python
        configuration.slots = slots
        configuration.slotDevices = slotDevice
        configuration.queueLimit = queueLimit
        configuration.retryAfterSeconds = retryAfterSeconds
        configuration.jobTimeout = .milliseconds(jobTimeoutMs)
        configuration.outputLifetime = .milliseconds(outputLifetimeMs)
        if ffmpeg != "none" {
            if FileManager.default.isExecutableFile(atPath: ffmpeg) {
                configuration.ffmpeg = ffmpeg
            } else {
                logger.warning("no ffmpeg at \(ffmpeg): outputs get no GIF or WebP rendition (install Debian's ffmpeg or pass --ffmpeg)")
            }
        }
        for directory in [configuration.outputDirectory, configuration.workDirectory] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let service = EngineService(configuration: configuration, logger: logger)
        let shutdownSignal = ShutdownSignal.install()
        var limits = EngineListenerLimits()
        limits.maxRequestBytes = maxRequestBytes
        limits.maxConnections = maxConnections
        limits.headerTimeout = .milliseconds(headerTimeoutMs)
        limits.bodyProgressTimeout = .milliseconds(bodyTimeoutMs)
        limits.idleTimeout = .milliseconds(idleTimeoutMs)
        limits.sendTimeout = .milliseconds(sendTimeoutMs)
        let server = try await EngineHTTPServer(service: service, host: host, port: port, limits: limits)
        logger.info("FaceFusion \(service.faceFusionVersion) in \(configuration.faceFusionDirectory), \(slots) slots, queue \(queueLimit)")
        print("swapline engine listening on \(host):\(server.port)")
        fflush(nil)
        let signal = await shutdownSignal.wait()
        logger.info("received \(signal), stopping")
        await server.stop()
        service.processGroups.killAll()
        try? await service.fileThreads.shutdownGracefully()
    }
}
