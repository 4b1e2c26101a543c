import ArgumentParser
import Dispatch
import Foundation
import H2Transport
import Logging
import NIOCore
import SwaplineCore
import SwaplinePostgres
import SwaplineServer
import SwaplineStore
import SwaplineWorker

#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the task server: gRPC over HTTP/2 and the legacy REST routes over HTTP/1.1 and HTTP/2, on one port, in cleartext or (with --tls-cert and --tls-key) over TLS.",
        discussion: """
            Prints 'swapline listening on HOST:PORT' on stdout once it accepts connections. \
            A web dashboard is served at http://HOST:PORT/ui/ (docs/operations.md#the-web-dashboard-ui). \
            With --tls-cert and --tls-key the port speaks TLS only (1.2 or later): ALPN h2 \
            carries gRPC and REST over HTTP/2; with http/1.1 or no ALPN the first bytes tell \
            HTTP/1.1 from HTTP/2, as in cleartext (docs/security.md). Without them the port \
            speaks cleartext HTTP/2 with prior knowledge and HTTP/1.1. \
            SIGTERM or SIGINT starts a graceful shutdown: health turns NOT_SERVING, every \
            connection gets GOAWAY, and open calls have --shutdown-grace-ms to finish. \
            Tasks are kept in an SQLite database in --data (one server at a time may use a \
            data directory), or with --store postgres://USER@HOST:PORT/DATABASE in a \
            PostgreSQL database that any number of servers share (docs/deploy.md); the \
            password comes from --postgres-password-file, the URL, or PGPASSWORD.
            """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free one.")
    var port = 50051

    @Option(
        help: ArgumentHelp(
            "Serve TLS with this PEM certificate (the server's own certificate first, then its chain); needs --tls-key.",
            valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --tls-cert (unencrypted).", valueName: "file"))
    var tlsKey: String?

    @Option(help: "Lease a consumer holds a fetched task for, in ms, renewed by each PROCESSING update.")
    var leaseMs: Int64 = 30_000

    @Option(help: "Deliveries of a task before an expired lease fails it instead of requeueing it.")
    var maxAttempts: Int32 = 3

    @Option(help: "Longest FetchTask long-poll in ms; larger wait_ms values are capped to it.")
    var maxWaitMs: Int64 = 30_000

    @Option(help: "Time open calls get to finish after SIGTERM, in ms.")
    var shutdownGraceMs: Int64 = 10_000

    @Option(help: "Event-loop threads (default: one per core).")
    var threads: Int = System.coreCount

    @Option(help: "Largest request message accepted, in bytes.")
    var maxMessageBytes: Int = 4 * 1024 * 1024

    @Flag(help: "Also serve grpc.testing.TestService for gRPC's interop test cases.")
    var enableInteropTesting = false

    @Option(help: "Data directory holding the task database (created when missing).")
    var data = "./swapline-data"

    @Option(
        help: ArgumentHelp(
            "Task store: sqlite (durable, in --data), memory (nothing survives the process), or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require|verify-full] (shared by several servers).",
            valueName: "sqlite|memory|postgres-url"))
    var store: StoreSpec = .sqlite

    @Option(help: "File holding the PostgreSQL password (first line); overrides the URL's password and PGPASSWORD.")
    var postgresPasswordFile: String?

    @Option(help: "PostgreSQL connections this server opens for operations (one more listens for changes).")
    var postgresPoolSize = 8

    @Option(help: "SQLite durability: full (every commit survives a power cut) or normal (survives a crash of the process; faster).")
    var synchronous: SQLiteSynchronous = .full

    @Option(help: "Hours a finished task is kept before it is deleted.")
    var retentionHours: Double = 168

    @Option(help: "Commit concurrent changes together (on) or one transaction per change (off, for comparison).")
    var groupCommit: Switch = .on

    @Option(help: "In-process workers (task slots) consuming this server's queue through its port; they need --engine. Over TLS they trust the server's own --tls-cert.")
    var workers = 0

    @OptionGroup(title: "Workers") var workerOptions: WorkerOptions

    @OptionGroup(title: "URL policy") var urlPolicy: URLPolicyOptions

    @OptionGroup(title: "Connection limits and timeouts") var transportLimits: TransportLimitOptions
    @OptionGroup(title: "Long polls and watches") var longPollLimits: LongPollLimitOptions
    @OptionGroup(title: "Quotas") var quotas: QuotaOptions
    @OptionGroup(title: "Result files") var resultFileOptions: ResultFileOptions
    @OptionGroup(title: "HTTP access") var httpAccess: HTTPAccessOptions

    @OptionGroup(title: "Logging") var logging: LogOptions

    @Option(help: "File of bearer tokens, one 'role token' per line (roles: client, consumer, admin); adds to SWAPLINE_AUTH_TOKENS ('role:token,...').")
    var authTokensFile: String?

    @Flag(help: "Serve an address other than loopback with no tokens configured: access control is left to the network in front.")
    var insecure = false

    func validate() throws {
        try FlagRange.check(workers, "--workers", in: 0...FlagRange.maxThreadsOrSlots)
        guard workers == 0 || !workerOptions.engines.isEmpty else {
            throw ValidationError("--workers needs at least one --engine")
        }
        try FlagRange.check(port, "--port", in: 0...65535)
        try FlagRange.checkMilliseconds(leaseMs, "--lease-ms")
        try FlagRange.check(maxAttempts, "--max-attempts", in: 1...Int32.max)
        try FlagRange.checkMilliseconds(maxWaitMs, "--max-wait-ms", allowZero: true)
        try FlagRange.checkMilliseconds(shutdownGraceMs, "--shutdown-grace-ms", allowZero: true)
        try FlagRange.check(threads, "--threads", in: 1...FlagRange.maxThreadsOrSlots)
        try FlagRange.check(maxMessageBytes, "--max-message-bytes", in: 1...FlagRange.maxMessageBytes)
        // Written so that NaN, which compares false with everything, fails too.
        guard retentionHours > 0, retentionHours <= FlagRange.maxRetentionHours else {
            throw ValidationError("--retention-hours must be above 0 and at most \(FlagRange.maxRetentionHours), got \(retentionHours)")
        }
        try FlagRange.check(postgresPoolSize, "--postgres-pool-size", in: 1...FlagRange.maxThreadsOrSlots)
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together: give both, or neither for cleartext")
        }
        if postgresPasswordFile != nil, !store.isPostgres {
            throw ValidationError("--postgres-password-file needs --store postgres://…")
        }
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "swapline")

        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.eventLoopThreads = threads
        configuration.scheduler.leaseDurationMs = leaseMs
        configuration.scheduler.maxAttempts = maxAttempts
        configuration.scheduler.maxFetchWaitMs = maxWaitMs
        configuration.scheduler.urlPolicy = urlPolicy.policy
        quotas.apply(to: &configuration)
        urlPolicy.log(to: logger, role: workers > 0 ? "CreateTask and the in-process workers" : "CreateTask")
        configuration.grpc.maxReceiveMessageSize = maxMessageBytes
        transportLimits.apply(to: &configuration)
        configuration.shutdownGrace = .milliseconds(shutdownGraceMs)
        configuration.enableInteropTesting = enableInteropTesting
        configuration.longPolls = longPollLimits.limits(inProcessWorkers: workers)
        configuration.outputsDirectory = localOutputsDirectory
        httpAccess.apply(to: &configuration)
        configuration.finishedTaskRetention = .milliseconds(Int64(retentionHours * 3_600_000))
        configuration.resultFiles = resultFileOptions.deletion(by: try workerOptions.resultCleaner(defaultStorage: "local:\(data)/outputs"))
        if let tlsCert, let tlsKey {
            configuration.tls = try loadTLS(certificateFile: tlsCert, privateKeyFile: tlsKey, logger: logger)
            // In-process workers must be able to verify the server: refuse now rather than after binding.
            if workers > 0 { _ = try LocalEndpoint(host: host, port: port, tls: configuration.tls) }
        }
        configuration.accessTokens = try AccessTokenOptions.load(file: authTokensFile)
        configuration.allowsOpenAccessOffLoopback = insecure
        // In-process workers get a consumer token of their own, known only to this process.
        let workerToken = workers > 0 && !configuration.accessTokens.isEmpty ? AccessTokenOptions.randomToken() : nil
        if let workerToken { try configuration.accessTokens.add(workerToken, role: .consumer, source: "the in-process workers' token") }
        if configuration.accessTokens.isEmpty {
            logger.notice("access control is off: no tokens configured\(insecure ? " (--insecure)" : "")")
        } else {
            logger.info("access control: \(configuration.accessTokens)")
        }

        let shutdownSignal = ShutdownSignal.install()
        configuration.metrics.bootstrapSwiftMetrics()
        let queue = try await openQueue(rules: TaskRules(configuration.scheduler), logger: logger)
        let server = try await RunningServer.start(configuration: configuration, queue: queue, logger: logger)
        print("swapline listening on \(host):\(server.port)")
        fflush(nil)  // all streams: tests wait for this line on a pipe
        if let tls = configuration.tls {
            logger.info("serving gRPC and REST over TLS on \(host):\(server.port) (certificate \(tls.certificateFile), ALPN h2, http/1.1)")
        } else {
            logger.info("serving gRPC and REST on \(host):\(server.port)")
        }

        // In-process workers reach the server through its own port, like any other worker;
        // over TLS they trust the server's own certificate (LocalEndpoint).
        let consumer: TaskConsumer?
        if workers > 0 {
            let local = try LocalEndpoint(host: host, port: server.port, tls: configuration.tls)
            consumer = try workerOptions.makeConsumer(
                serverURL: local.url, caFile: local.caFile, connectTo: local.connectTo, publicBaseURL: local.url,
                defaultStorage: "local:\(data)/outputs", concurrency: workers, urlPolicy: urlPolicy.policy, token: workerToken,
                metrics: WorkerMetrics(registry: configuration.metrics), logger: Logger(label: "swapline.worker"))
        } else {
            consumer = nil
        }
        let working = Task { await consumer?.run() }

        let signal = await shutdownSignal.wait()
        logger.info("received \(signal), shutting down gracefully")
        consumer?.drain()
        await working.value
        await server.shutdown()
        logger.info("stopped")
    }

    /// Reads and checks the certificate and key; warns when the certificate is not valid now
    /// (clients will refuse it, but a server restarted with an old certificate should still run).
    private func loadTLS(certificateFile: String, privateKeyFile: String, logger: Logger) throws -> TLSCredentials {
        let tls = try TLSCredentials(certificateFile: certificateFile, privateKeyFile: privateKeyFile)
        let now = Date()
        if tls.notValidAfter < now {
            logger.warning("the certificate in \(certificateFile) expired at \(tls.notValidAfter): clients will refuse it")
        } else if tls.notValidBefore > now {
            logger.warning("the certificate in \(certificateFile) is not valid before \(tls.notValidBefore): clients will refuse it")
        } else if tls.notValidAfter < now.addingTimeInterval(14 * 24 * 3600) {
            logger.warning("the certificate in \(certificateFile) expires at \(tls.notValidAfter)")
        }
        return tls
    }

    /// The directory of `local:` result storage, which the server serves at `/outputs/`.
    private var localOutputsDirectory: String {
        let spec = workerOptions.storage.first { $0.hasPrefix("local:") } ?? "local:\(data)/outputs"
        return String(spec.dropFirst("local:".count))
    }

    /// The queue backend `--store` names.
    private func openQueue(rules: TaskRules, logger: Logger) async throws -> any TaskQueue {
        switch store {
        case .postgres(let url):
            let location = try PostgresStoreLocation(
                url: url, passwordFile: postgresPasswordFile, environment: ProcessInfo.processInfo.environment)
            var storeConfiguration = PostgresTaskQueue.Configuration(location: location)
            storeConfiguration.poolSize = postgresPoolSize
            storeConfiguration.concurrentBatches = max(1, postgresPoolSize / 2)
            let postgres = try await PostgresTaskQueue.open(configuration: storeConfiguration, rules: rules, logger: logger)
            logger.info("task queue in PostgreSQL \(location) (pool of \(postgresPoolSize) connections)")
            return postgres
        case .memory:
            logger.notice("--store memory: tasks are kept in memory only and lost when the server stops")
            return InMemoryTaskQueue(rules: rules)
        case .sqlite:
            var storeConfiguration = SQLiteTaskQueue.Configuration(directory: data)
            storeConfiguration.synchronous = synchronous
            storeConfiguration.groupCommit = groupCommit == .on
            let sqlite = try SQLiteTaskQueue(configuration: storeConfiguration, rules: rules)
            logger.info(
                "task database \(sqlite.databasePath) (synchronous \(synchronous.rawValue), group commit \(groupCommit.rawValue))")
            return sqlite
        }
    }
}

/// What `--store` names: a backend kind, or the URL of a PostgreSQL database.
enum StoreSpec: ExpressibleByArgument, Equatable {
    case sqlite, memory
    case postgres(url: String)

    init?(argument: String) {
        switch argument {
        case "sqlite": self = .sqlite
        case "memory": self = .memory
        case let url where PostgresStoreLocation.isPostgresURL(url): self = .postgres(url: url)
        default: return nil
        }
    }

    var isPostgres: Bool {
        if case .postgres = self { return true }
        return false
    }

    var defaultValueDescription: String {
        switch self {
        case .sqlite: return "sqlite"
        case .memory: return "memory"
        case .postgres: return "postgres://…"
        }
    }
}

enum Switch: String, CaseIterable, ExpressibleByArgument {
    case on, off
}

extension SQLiteSynchronous: ExpressibleByArgument {}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Waits for SIGTERM or SIGINT.
/// SIGTERM and SIGINT, caught from the moment `install` returns: a signal that arrives before
/// anybody waits (right after the listening line, say) is kept for `wait` instead of killing
/// the process with the default action.
final class ShutdownSignal: @unchecked Sendable {
    // Written once in `install`; the sources only need to stay alive.
    private var sources: [any DispatchSourceSignal] = []
    private let names: AsyncStream<String>
    private let received: AsyncStream<String>.Continuation

    private init() {
        (names, received) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingOldest(1))
    }

    static func install() -> ShutdownSignal {
        let signals = ShutdownSignal()
        let queue = DispatchQueue(label: "swapline.signals")
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [received = signals.received] in received.yield(name) }
            source.resume()
            signals.sources.append(source)
        }
        return signals
    }

    /// The name of the first signal received.
    func wait() async -> String {
        for await name in names { return name }
        return "SIGTERM"
    }
}
