import H2Transport
import NIOCore
import RPCCore
import SwaplineCore
import SwaplineMetrics

/// Everything `swapline serve` can be told; tests build one directly.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (see `RunningServer.port`).
    public var port = 50051
    /// Event-loop threads; each connection lives on one of them.
    public var eventLoopThreads = System.coreCount
    public var scheduler = SchedulerConfiguration()
    public var grpc = GRPCServerConfiguration()
    public var http2 = H2Configuration()
    /// Serve TLS on the port (`--tls-cert`, `--tls-key`): gRPC and REST over HTTP/2 and
    /// HTTP/1.1 inside it, chosen by ALPN. `nil`: cleartext, as h2c and HTTP/1.1.
    public var tls: TLSCredentials?
    /// How long open calls may run on after SIGTERM before their connections are closed.
    public var shutdownGrace: TimeAmount = .seconds(10)
    /// How often expired leases are looked for.
    public var leaseSweepInterval: TimeAmount = .milliseconds(100)
    /// Also serve grpc.testing.TestService, for gRPC's interop test cases.
    public var enableInteropTesting = false
    /// Directory of the local result storage, served read-only at `/outputs/{task_id}/{key}/{file}`;
    /// nil serves nothing there.
    public var outputsDirectory: String?
    /// Names the REST routes and `/outputs/` answer besides the loopback ones and those of
    /// the TLS certificate (`--allowed-host`, see `AllowedHosts`).
    public var allowedHosts: [String] = []
    /// Finished tasks unchanged for this long are deleted (`--retention-hours`, 7 days).
    public var finishedTaskRetention: TimeAmount = .hours(168)
    /// How often retention looks for such tasks; each run deletes them in batches of
    /// `retentionBatchSize` until none is left, so a backlog never holds the store for long.
    public var retentionSweepInterval: TimeAmount = .seconds(60)
    public var retentionBatchSize = 500
    /// Deletes the stored result files of purged tasks, and of COMPLETED tasks past the result
    /// lifetime (`ResultFileDeletion`); `nil`: the files stay (recorded deletions wait).
    public var resultFiles: ResultFileDeletion?
    /// Bearer tokens and their roles; empty turns access control off (`docs/security.md`).
    public var accessTokens = AccessTokens()
    /// Serve without tokens on an address other than loopback (`--insecure`); otherwise such a
    /// server refuses to start.
    public var allowsOpenAccessOffLoopback = false
    /// Caps on open FetchTask and WatchTask calls (`LongPollLimitOptions`).
    public var longPolls = LongPollLimits()
    /// Per-client pace of task creation (`--create-rate`, `--create-burst`); `nil` for none.
    public var createRateLimit: CreateRateLimit?
    /// Where the server's metrics go and `/metrics` reads them from (docs/operations.md#metrics).
    public var metrics = MetricsRegistry()

    public init() {}
}
