import NIOCore
import Prometheus
import RPCCore
import SwaplineMetrics

/// `swapline_http_requests_total{route,status}` and `swapline_http_duration_seconds{route}`
/// for every request the REST shim answers (HTTP/1.1 and HTTP/2, cleartext or TLS), recorded
/// once per exchange when it closes (`RESTExchange.streamClosed`).
final class RESTMetrics: Sendable {
    /// The statuses the shim answers; any other counts as `other`.
    static let statuses = [200, 204, 400, 401, 403, 404, 405, 409, 413, 415, 421, 422, 429, 499, 500, 501, 503, 504]
    static let durationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]

    private let requests: CounterTable
    private let durations: [DurationHistogram]

    init(registry: MetricsRegistry) {
        let statusLabels = Self.statuses.map(String.init) + ["other"]
        requests = CounterTable(
            registry: registry, name: "swapline_http_requests_total", help: "REST shim requests answered, by route and HTTP status",
            labelSets: RESTRouteName.allCases.flatMap { route in statusLabels.map { [("route", route.label), ("status", $0)] } })
        durations = RESTRouteName.allCases.map { route in
            registry.durationHistogram(
                name: "swapline_http_duration_seconds", labels: [("route", route.label)], buckets: Self.durationBuckets,
                help: "REST shim exchange duration from the request head until the response ended, by route")
        }
    }

    /// `status` is the response head's, `nil` when the client left before one was written
    /// (counted as 499, client closed request).
    func requestEnded(route: RESTRouteName, status: Int?, startedAt: NIODeadline) {
        let column = Self.statuses.firstIndex(of: status ?? 499) ?? Self.statuses.count
        requests.increment(route.rawValue * (Self.statuses.count + 1) + column)
        durations[route.rawValue].recordNanoseconds((NIODeadline.now() - startedAt).nanoseconds)
    }
}

/// The `route` label of a REST request: its route without the task id, or `unmatched` for a
/// request no route took (404, 405, refused host).
enum RESTRouteName: Int, CaseIterable, Sendable {
    case createTask, processSync, getTask, cancelTask, watchTask, listTasks, queueStats, queueStatsEvents, fetchTask, updateStatus, health, openAPI
    case metrics, output, dashboard
    case unmatched

    init(_ route: RESTRoute?) {
        switch route {
        case .createTask: self = .createTask
        case .processSync: self = .processSync
        case .getTask: self = .getTask
        case .cancelTask: self = .cancelTask
        case .watchTask: self = .watchTask
        case .listTasks: self = .listTasks
        case .queueStats: self = .queueStats
        case .queueStatsEvents: self = .queueStatsEvents
        case .fetchTask: self = .fetchTask
        case .updateStatus: self = .updateStatus
        case .health: self = .health
        case .openAPI: self = .openAPI
        case .metrics: self = .metrics
        case .output: self = .output
        case .dashboard: self = .dashboard
        case nil: self = .unmatched
        }
    }

    var label: String {
        switch self {
        case .createTask: return "create_task"
        case .processSync: return "process"
        case .getTask: return "get_task"
        case .cancelTask: return "cancel_task"
        case .watchTask: return "task_events"
        case .listTasks: return "list_tasks"
        case .queueStats: return "queue_stats"
        case .queueStatsEvents: return "queue_stats_events"
        case .fetchTask: return "fetch_task"
        case .updateStatus: return "update_status"
        case .health: return "health"
        case .openAPI: return "openapi"
        case .metrics: return "metrics"
        case .output: return "outputs"
        case .dashboard: return "ui"
        case .unmatched: return "unmatched"
        }
    }
}

/// The transport's writer for one REST exchange, passing every call through and keeping the
/// status of the response head, so `RESTMetrics` learns it in one place whichever route (or
/// refusal) wrote it.
final class StatusRecordingWriter: HTTPStreamWriter {
    private let transport: any HTTPStreamWriter
    private(set) var status: Int?

    init(_ transport: any HTTPStreamWriter) {
        self.transport = transport
    }

    var eventLoop: any EventLoop { transport.eventLoop }
    var queuedBodyBytes: Int { transport.queuedBodyBytes }
    var peerAddress: String? { transport.peerAddress }
    var connectionID: ConnectionID? { transport.connectionID }

    func writeHead(status: Int, headers: [HeaderField], endStream: Bool) {
        self.status = status
        transport.writeHead(status: status, headers: headers, endStream: endStream)
    }

    func writeBody(_ bytes: ByteBuffer) { transport.writeBody(bytes) }
    func writeEnd(trailers: [HeaderField]) { transport.writeEnd(trailers: trailers) }
    func reset() { transport.reset() }
}
