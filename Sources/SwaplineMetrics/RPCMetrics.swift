public import NIOCore
import Prometheus
public import RPCCore

/// `swapline_rpc_requests_total{method,code}` and `swapline_rpc_duration_seconds{method}`
/// for every gRPC call of a router, recorded by `GRPCServerStream` as each call ends.
///
/// Built once the router's methods are registered: every method gets its histogram and its
/// row of code counters up front, found by `RoutedMethod.index` on the call's path, so a call
/// costs two clock reads, one atomic add and one histogram record (swift-prometheus's, which
/// holds its own short lock).
public final class RPCMetrics: RPCCallObserver {
    /// gRPC's codes 0...16; a code outside them (none of ours) counts as UNKNOWN.
    static let codeNames = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]
    /// The `method` label of calls that named no registered method.
    static let unknownMethod = "unknown"

    /// Latency buckets from a cached read to a minute-long FetchTask poll.
    static let latencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    private let requests: CounterTable
    /// One per registered method, then one for unknown methods.
    private let durations: [DurationHistogram]

    /// `methods` is `RPCRouter.registeredMethods`.
    public init(methods: [MethodDescriptor], registry: MetricsRegistry) {
        let labels = methods.map { Self.methodLabel($0) } + [Self.unknownMethod]
        requests = CounterTable(
            registry: registry, name: "swapline_rpc_requests_total", help: "gRPC calls ended, by method and status code",
            labelSets: labels.flatMap { method in Self.codeNames.map { [("method", method), ("code", $0)] } })
        durations = labels.map { method in
            registry.durationHistogram(
                name: "swapline_rpc_duration_seconds", labels: [("method", method)], buckets: Self.latencyBuckets,
                help: "gRPC call duration from its request head to its status, by method")
        }
    }

    /// `TaskService/CreateTask`: the short service name keeps the label readable.
    static func methodLabel(_ method: MethodDescriptor) -> String {
        let service = method.service.split(separator: ".").last.map(String.init) ?? method.service
        return "\(service)/\(method.method)"
    }

    public func callEnded(methodIndex: Int?, code: GRPCStatus.Code, startedAt: NIODeadline) {
        let row = methodIndex ?? durations.count - 1
        let column = Self.codeNames.indices.contains(code.rawValue) ? code.rawValue : GRPCStatus.Code.unknown.rawValue
        requests.increment(row * Self.codeNames.count + column)
        durations[row].recordNanoseconds((NIODeadline.now() - startedAt).nanoseconds)
    }

    /// Calls counted so far for a method row and code (tests).
    func count(methodIndex: Int, code: GRPCStatus.Code) -> Int {
        requests.count(methodIndex * Self.codeNames.count + code.rawValue)
    }
}
