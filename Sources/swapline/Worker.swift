import ArgumentParser
import CurlHTTP
import Foundation
import Logging
import SwaplineClient
import SwaplineCore
import SwaplineWorker

/// Engine, storage and retry options of a worker; shared by `swapline worker` and
/// `swapline serve --workers N`.
struct WorkerOptions: ParsableArguments {
    @Option(name: .customLong("engine"), help: "FaceFusion engine base URL, e.g. http://127.0.0.1:8000; repeat for several.")
    var engines: [String] = []

    @Option(help: "Where outputs are stored: local:DIR, s3://BUCKET[/PREFIX] or cfimages:ACCOUNT_ID (default: local:<data dir>/outputs). Repeat for fallbacks, tried in order when one refuses a file or fails (docs/storage.md).")
    var storage: [String] = []

    @OptionGroup(title: "S3 storage") var s3: S3StorageOptions

    @OptionGroup(title: "Cloudflare Images storage") var cloudflareImages: CloudflareImagesOptions

    @Option(help: "FaceFusion's output directory when it runs on this machine: outputs are read from it instead of downloaded.")
    var engineOutputDir: String?

    @Option(help: "Timeout of one FaceFusion /process call, in ms.")
    var engineTimeoutMs: Int64 = 120_000

    @Option(help: "How often every engine is health-checked, in ms.")
    var healthIntervalMs: Int64 = 5_000

    @Option(help: "Wait before the first retry of a failed engine call, in ms; it doubles per try (3 tries in all).")
    var retryBaseMs: Int64 = 500

    @Option(help: "Largest output file accepted from an engine, in bytes.")
    var maxOutputBytes: Int = 100 * 1024 * 1024

    @Option(help: "Largest source or target file fetched from a task's URLs, in bytes.")
    var maxInputBytes: Int = 100 * 1024 * 1024

    @Option(help: "HTTP proxy for fetching the task's URLs (default: none; http_proxy and the like are ignored). The proxy then makes the connections: make it refuse internal addresses.")
    var urlProxy: String?

    @Option(help: "After SIGTERM, how long in-flight tasks may run on before they are handed back, in ms.")
    var drainTimeoutMs: Int64 = 30_000

    func validate() throws {
        try FlagRange.checkMilliseconds(engineTimeoutMs, "--engine-timeout-ms")
        try FlagRange.checkMilliseconds(healthIntervalMs, "--health-interval-ms")
        try FlagRange.checkMilliseconds(retryBaseMs, "--retry-base-ms", allowZero: true)
        try FlagRange.checkMilliseconds(drainTimeoutMs, "--drain-timeout-ms", allowZero: true)
        try FlagRange.check(maxOutputBytes, "--max-output-bytes", in: 1...Int.max)
        try FlagRange.check(maxInputBytes, "--max-input-bytes", in: 1...Int.max)
    }

    /// The `--storage` backends in their order (`defaultStorage` when none is given).
    func storageChain(publicBaseURL: String, defaultStorage: String, http: CurlHTTPClient, metrics: WorkerMetrics? = nil) throws -> ResultStorageChain {
        let specs = storage.isEmpty ? [defaultStorage] : storage
        let environment = ProcessInfo.processInfo.environment
        let s3Settings = try s3.settings(for: specs, environment: environment)
        let imagesSettings = try cloudflareImages.settings(for: specs, environment: environment)
        return ResultStorageChain(
            try specs.map {
                try ResultStorageSpec.make($0, publicBaseURL: publicBaseURL, s3: s3Settings, cloudflareImages: imagesSettings, http: http)
            }, metrics: metrics)
    }

    /// A consumer of `serverURL` (an `https://` one verified against `caFile`, or the system's
    /// trust store without it; reached at `connectTo` when given) whose stored outputs are
    /// published under `publicBaseURL`, fetching the tasks' URLs under `urlPolicy`.
    func makeConsumer(
        serverURL: String, caFile: String? = nil, connectTo: String? = nil, publicBaseURL: String, defaultStorage: String,
        concurrency: Int, urlPolicy: URLPolicy, token: String? = nil, metrics: WorkerMetrics, logger: Logger
    ) throws -> TaskConsumer {
        let http = CurlHTTPClient()
        let faceFusion = FaceFusionClient(http: http, processTimeout: .milliseconds(engineTimeoutMs))
        let engines = EnginePool(urls: self.engines) { await faceFusion.healthProblem(of: $0) }
        metrics.watch(engines)
        var fetching = ClientURLFetcher.Configuration()
        fetching.policy = urlPolicy
        fetching.maxBytes = maxInputBytes
        fetching.proxy = urlProxy
        if let urlProxy {
            logger.warning("task URLs are fetched through the proxy \(urlProxy): it, not this worker, connects to them")
        }
        // A client of its own: its connection pool only ever holds connections the policy checked.
        let inputs = ClientURLFetcher(http: CurlHTTPClient(), configuration: fetching)
        let processor = FaceSwapProcessor(
            engines: engines, faceFusion: faceFusion, inputs: inputs, http: http,
            storage: try storageChain(publicBaseURL: publicBaseURL, defaultStorage: defaultStorage, http: http, metrics: metrics),
            retry: RetryPolicy(baseDelay: .milliseconds(retryBaseMs)), maxOutputBytes: maxOutputBytes,
            engineOutputDirectory: engineOutputDir, metrics: metrics)
        var configuration = ConsumerConfiguration()
        configuration.consumerID = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        configuration.concurrency = concurrency
        configuration.drainTimeout = .milliseconds(drainTimeoutMs)
        configuration.healthInterval = .milliseconds(healthIntervalMs)
        return TaskConsumer(
            client: SwaplineClient(serverURL: serverURL, caFile: caFile, connectTo: connectTo, http: http, bearerToken: token),
            processors: [processor], engines: engines,
            configuration: configuration, logger: logger, metrics: metrics)
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a task consumer: fetch face-swap tasks, run them on FaceFusion engines, store the outputs.",
        discussion: """
            Prints 'swapline worker started' on stdout once it polls for work. SIGTERM or SIGINT \
            drains: no more tasks are fetched, tasks in flight get --drain-timeout-ms to finish, \
            and the rest are handed back to the queue.
            """)

    @Option(help: "Base URL of the Swapline server (http:// or https://).")
    var server = "http://127.0.0.1:50051"

    @Option(help: caFileHelp)
    var caFile: String?

    @Option(help: "Tasks worked on at once.")
    var concurrency = 1

    @Option(help: "Base URL under which stored outputs are served (default: --server).")
    var publicURL: String?

    @Option(help: "Bearer token with the consumer (or admin) role; default: SWAPLINE_TOKEN.")
    var token: String?

    @OptionGroup var options: WorkerOptions

    @OptionGroup(title: "URL policy") var urlPolicy: URLPolicyOptions

    @OptionGroup(title: "Metrics") var metricsOptions: WorkerMetricsOptions

    @OptionGroup(title: "Logging") var logging: LogOptions

    func validate() throws {
        try FlagRange.check(concurrency, "--concurrency", in: 1...FlagRange.maxThreadsOrSlots)
        guard !options.engines.isEmpty else { throw ValidationError("give at least one --engine") }
        try validateCAFile(caFile, server: server)
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "swapline.worker")
        urlPolicy.log(to: logger, role: "this worker")
        let shutdownSignal = ShutdownSignal.install()
        let metrics = WorkerMetrics()
        metrics.registry.bootstrapSwiftMetrics()
        let consumer = try options.makeConsumer(
            serverURL: server, caFile: caFile, publicBaseURL: publicURL ?? server, defaultStorage: "local:./swapline-data/outputs",
            concurrency: concurrency, urlPolicy: urlPolicy.policy, token: bearerToken(option: token), metrics: metrics, logger: logger)
        let metricsListener = try await metricsOptions.startListener(serving: metrics, logger: logger)
        let working = Task { await consumer.run() }
        print("swapline worker started (\(concurrency) slots, server \(server))")
        fflush(nil)
        let signal = await shutdownSignal.wait()
        logger.info("received \(signal), draining")
        consumer.drain()
        await working.value
        await metricsListener?.stop()
        logger.info("stopped")
    }
}
