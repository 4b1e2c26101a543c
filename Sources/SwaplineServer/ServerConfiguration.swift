import H2Transport
import NIOCore
import RPCCore
import SwaplineCore

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
    /// How long open calls may run on after SIGTERM before their connections are closed.
    public var shutdownGrace: TimeAmount = .seconds(10)
    /// How often expired leases are looked for.
    public var leaseSweepInterval: TimeAmount = .milliseconds(100)
    /// Also serve grpc.testing.TestService, for gRPC's interop test cases.
    public var enableInteropTesting = false

    public init() {}
}
