import H2Transport
import Logging
import NIOCore
import NIOPosix
import RPCCore
import SwaplineCore
import SwaplineMetrics

/// A started Swapline server: the listening HTTP/2 socket, its event loops, the scheduler over
/// its queue backend, and the background lease, retention and re-check sweeps and the deletion
/// of stored result files. The CLI and the tests build it the same way, with `start`.
public final class RunningServer: Sendable {
    public let port: Int
    public let scheduler: TaskScheduler
    private let server: H2Server
    private let group: MultiThreadedEventLoopGroup
    private let health: HealthService
    /// The dashboard's stats event streams, ended when shutdown begins.
    private let statsStreams: OpenStatsStreams
    private let sweeps: [RepeatedTask]
    private let resultFileSweeper: ResultFileSweeper?
    /// Reads `/outputs/` files off the event loops; its threads bound the reads at once.
    private let fileThreads: NIOThreadPool
    private let configuration: ServerConfiguration
    private let logger: Logger

    private init(
        port: Int, scheduler: TaskScheduler, server: H2Server, group: MultiThreadedEventLoopGroup, health: HealthService,
        statsStreams: OpenStatsStreams, sweeps: [RepeatedTask], resultFileSweeper: ResultFileSweeper?, fileThreads: NIOThreadPool,
        configuration: ServerConfiguration, logger: Logger
    ) {
        self.port = port
        self.scheduler = scheduler
        self.server = server
        self.group = group
        self.health = health
        self.statsStreams = statsStreams
        self.sweeps = sweeps
        self.resultFileSweeper = resultFileSweeper
        self.fileThreads = fileThreads
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves `queue` (an in-memory queue when `nil`); the server closes it at shutdown.
    public static func start(configuration: ServerConfiguration, queue: (any TaskQueue)? = nil, logger: Logger) async throws -> RunningServer {
        if configuration.accessTokens.isEmpty, !configuration.allowsOpenAccessOffLoopback, !isLoopback(configuration.host) {
            await queue?.close()
            throw ServerStartError(
                "refusing to serve \(configuration.host) without access control: configure tokens (SWAPLINE_AUTH_TOKENS or --auth-tokens-file), bind a loopback address, or pass --insecure (docs/security.md)")
        }
        let queue = queue ?? InMemoryTaskQueue(rules: TaskRules(configuration.scheduler))
        queue.setCommitObserver(StoreMetrics(registry: configuration.metrics).transactionEnded)
        let taskMetrics = TaskMetrics(registry: configuration.metrics)
        let changeLog = TaskChangeLog(logger: logger)
        let scheduler = TaskScheduler(
            configuration: configuration.scheduler, queue: queue,
            changeObserver: { task in
                taskMetrics.observe(task)
                changeLog.record(task)
            })
        var router = RPCRouter()
        if !configuration.accessTokens.isEmpty {
            router.interceptors.append(AccessControl(tokens: configuration.accessTokens))
        }
        let watches = LongPollGate.watches(configuration.longPolls)
        TaskService(
            scheduler: scheduler, limits: configuration.longPolls, watches: watches,
            createLimiter: configuration.createRateLimit.map { CreateRateLimiter(limit: $0) }
        ).register(in: &router)
        ConsumerService(scheduler: scheduler, limits: configuration.longPolls).register(in: &router)
        if configuration.enableInteropTesting {
            InteropTestService().register(in: &router)
        }
        let reflection: ReflectionService
        do {
            reflection = try ReflectionService(exposedServices: router.serviceNames.union([HealthService.name] + ReflectionService.names))
        } catch {
            await queue.close()
            throw ServerStartError("the compiled-in proto descriptors do not parse (run tools/generate-proto.sh): \(error)")
        }
        reflection.register(in: &router)
        let health = HealthService(services: router.serviceNames, isStoreReachable: { queue.isReachable })
        let statsFeed = QueueStatsFeed(scheduler: scheduler, watches: watches)
        health.register(in: &router)
        router.callObserver = RPCMetrics(methods: router.registeredMethods, registry: configuration.metrics)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        let fileThreads = NIOThreadPool(numberOfThreads: 2)
        fileThreads.start()
        let server: H2Server
        do {
            server = try await H2Server.bind(
                host: configuration.host, port: configuration.port, group: group, configuration: configuration.http2,
                tls: configuration.tls, factory: ContentTypeRouter(
                    grpc: GRPCStreamHandlerFactory(router: router, configuration: configuration.grpc),
                    http: RESTHandlerFactory(
                        router: router, metrics: configuration.metrics, outputFiles: configuration.outputsDirectory.map { OutputFiles(directory: $0, threadPool: fileThreads) },
                        allowedHosts: AllowedHosts(
                            listeningOn: configuration.host, extra: configuration.allowedHosts,
                            certificateNames: configuration.tls?.dnsNames ?? []),
                        queueStats: statsFeed)),
                logger: logger)
        } catch {
            try? await fileThreads.shutdownGracefully()
            try? await group.shutdownGracefully()
            await queue.close()
            throw error
        }
        ServerGauges.register(
            in: configuration.metrics,
            reading: ServerGauges.Sources(
                queue: queue, clock: .system, openConnections: { server.openConnectionCount },
                openWatches: { watches.openCount }, waitingConsumers: { scheduler.waitingConsumers }))
        let port = server.localAddress.port ?? configuration.port
        let scheme = configuration.tls == nil ? "http" : "https"
        scheduler.setOrigin(TaskOrigin(sourceChannel: "\(scheme)://\(Self.urlHost(configuration.host)):\(port)", targetPort: Int32(port)))
        var sweeps = [
            group.next().scheduleRepeatedTask(
                initialDelay: configuration.leaseSweepInterval, delay: configuration.leaseSweepInterval
            ) { _ in scheduler.expireLeases() }
        ]
        if let recheckMs = queue.changeFeedRecheckIntervalMs {
            sweeps.append(
                group.next().scheduleRepeatedTask(initialDelay: .milliseconds(recheckMs), delay: .milliseconds(recheckMs)) { _ in
                    scheduler.recheck()
                })
        }
        // Health watchers hear of the store becoming unreachable (or unwritable) and back.
        sweeps.append(
            group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
                health.refreshStoreReachability()
            })
        let retentionLoop = group.next()
        sweeps.append(
            retentionLoop.scheduleRepeatedTask(initialDelay: .zero, delay: configuration.retentionSweepInterval) { _ in
                purgeFinishedTasks(scheduler: scheduler, configuration: configuration, on: retentionLoop, logger: logger)
            })
        let resultFileSweeper = configuration.resultFiles.map { ResultFileSweeper(queue: queue, deletion: $0, logger: logger) }
        return RunningServer(
            port: port, scheduler: scheduler, server: server, group: group, health: health,
            statsStreams: statsFeed.openStreams, sweeps: sweeps, resultFileSweeper: resultFileSweeper,
            fileThreads: fileThreads, configuration: configuration, logger: logger)
    }

    /// Deletes one batch of finished tasks past their retention, and goes on with the next
    /// from the event loop (not from the store's completion, which may run on the store's
    /// writer or, for memory stores, inside this call) while batches come back full.
    private static func purgeFinishedTasks(
        scheduler: TaskScheduler, configuration: ServerConfiguration, on loop: any EventLoop, logger: Logger, purgedSoFar: Int = 0
    ) {
        let ageMs = configuration.finishedTaskRetention.nanoseconds / 1_000_000
        scheduler.purgeFinishedTasks(olderThanMs: ageMs, limit: configuration.retentionBatchSize) { result in
            switch result.map(\.count) {
            case .success(let count) where count == configuration.retentionBatchSize:
                loop.execute {
                    purgeFinishedTasks(
                        scheduler: scheduler, configuration: configuration, on: loop, logger: logger, purgedSoFar: purgedSoFar + count)
                }
            case .success(let count):
                if purgedSoFar + count > 0 {
                    logger.info("retention: deleted \(purgedSoFar + count) finished tasks unchanged for \(Double(ageMs) / 3_600_000) h")
                }
            case .failure(let error):
                logger.warning("retention: could not delete finished tasks, will retry: \(error)")
            }
        }
    }

    /// Graceful shutdown: health turns NOT_SERVING, the dashboard's stats streams end, the
    /// listener closes, every connection gets GOAWAY, and open calls have `shutdownGrace` to
    /// finish before they are cut; then the queue backend is closed.
    public func shutdown() async {
        health.markNotServing()
        statsStreams.closeAll()
        await server.shutdown(grace: configuration.shutdownGrace)
        for sweep in sweeps { sweep.cancel() }
        await resultFileSweeper?.stop()
        try? await group.shutdownGracefully()
        try? await fileThreads.shutdownGracefully()
        await scheduler.queue.close()
    }

    /// Whether `host` is a loopback address or name: `localhost`, `127.0.0.0/8`, `::1`.
    static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        switch bare.lowercased() {
        case "localhost", "::1", "0:0:0:0:0:0:0:1": return true
        default: break
        }
        let v4 = bare.lowercased().hasPrefix("::ffff:") ? String(bare.dropFirst("::ffff:".count)) : bare
        let octets = v4.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil } && octets[0] == "127"
    }

    private static func urlHost(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }
}

/// Why a server did not start, in words for the operator.
public struct ServerStartError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}
