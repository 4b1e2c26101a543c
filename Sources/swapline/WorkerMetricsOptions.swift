import ArgumentParser
import H2Transport
import Logging
import NIOPosix
import SwaplineMetrics
import SwaplineWorker

/// A worker's Prometheus listener (docs/operations.md#metrics): `GET /metrics` over HTTP/1.1
/// and h2c on a port of its own, off unless `--metrics-port` is given. It binds loopback
/// unless told otherwise, and has no token: it shows engine URLs and counts, never task data.
struct WorkerMetricsOptions: ParsableArguments {
    @Option(help: "Port of the worker's Prometheus /metrics listener (HTTP/1.1 and h2c, no token); 0: no listener.")
    var metricsPort = 0

    @Option(help: "Address the /metrics listener binds; the default keeps it to this machine (0.0.0.0 or :: for a scraper elsewhere).")
    var metricsHost = "127.0.0.1"

    func validate() throws {
        try FlagRange.check(metricsPort, "--metrics-port", in: 0...65_535)
    }

    /// Starts the listener over `metrics` when a port is given; stop it with `stop`.
    func startListener(serving metrics: WorkerMetrics, logger: Logger) async throws -> MetricsListener? {
        guard metricsPort > 0 else { return nil }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let server = try await H2Server.bind(
                host: metricsHost, port: metricsPort, group: group, configuration: H2Configuration(),
                factory: MetricsEndpoint(registry: metrics.registry), logger: logger)
            logger.info("metrics on http://\(metricsHost):\(metricsPort)/metrics")
            return MetricsListener(server: server, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw ValidationError("cannot listen for /metrics on \(metricsHost):\(metricsPort): \(error)")
        }
    }
}

/// A running `/metrics` listener and its event loop.
struct MetricsListener {
    let server: H2Server
    let group: MultiThreadedEventLoopGroup

    func stop() async {
        await server.shutdown(grace: .seconds(1))
        try? await group.shutdownGracefully()
    }
}
