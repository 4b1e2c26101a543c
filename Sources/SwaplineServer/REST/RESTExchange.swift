import Foundation
import H2Transport
import NIOCore
import RPCCore
import SwaplineCore
import SwaplineMessages
import SwaplineMetrics

/// Creates the handler of each REST request. Every route calls its RPC through `router`, the
/// same router (and so the same handler) that gRPC clients reach.
struct RESTHandlerFactory: HTTPStreamHandlerFactory {
    /// Largest JSON request body; a larger one is answered 413 without being buffered.
    static let defaultMaxBodyBytes = 1024 * 1024

    let router: RPCRouter
    /// What `/metrics` answers from; `nil` answers 404 there and records nothing.
    let metrics: MetricsRegistry?
    let restMetrics: RESTMetrics?
    var maxBodyBytes = defaultMaxBodyBytes
    /// The OpenAPI document served at `/openapi.json`, serialized once.
    let openAPIDocument: ByteBuffer
    /// Local result storage served at `/outputs/`, if any.
    let outputFiles: OutputFiles?
    /// The `Host` / `:authority` names answered (DNS rebinding).
    let allowedHosts: AllowedHosts
    /// What `/api/face-swap/stats/events` streams from; without it the route is 404.
    let queueStats: QueueStatsFeed?

    init(
        router: RPCRouter, metrics: MetricsRegistry? = nil, outputFiles: OutputFiles? = nil, allowedHosts: AllowedHosts = .any,
        queueStats: QueueStatsFeed? = nil
    ) {
        self.router = router
        self.metrics = metrics
        self.restMetrics = metrics.map(RESTMetrics.init)
        self.outputFiles = outputFiles
        self.allowedHosts = allowedHosts
        self.queueStats = queueStats
        self.openAPIDocument = ByteBuffer(bytes: OpenAPIDocument.serialized())
    }

    func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler {
        RESTExchange(factory: self, writer: writer)
    }
}

/// An answer the REST shim gives without calling an RPC, or an RPC's error status, as
/// FastAPI would have said it.
enum RESTError: Error, Equatable {
    case badRequest(String)
    /// The request names a host this server does not answer for (DNS rebinding).
    case hostNotAllowed(String)
    /// A browser request from another site to a route that changes state.
    case crossSite(String)
    case notFound
    case methodNotAllowed(allowed: [String])
    case unsupportedMediaType(String)
    case bodyTooLarge(limit: Int)
    /// FastAPI's 422 for a body or query that does not fit the schema.
    case validation([JSONValue])
    case status(GRPCStatus)

    var httpStatus: Int {
        switch self {
        case .badRequest: return 400
        case .hostNotAllowed: return 421
        case .crossSite: return 403
        case .notFound: return 404
        case .methodNotAllowed: return 405
        case .unsupportedMediaType: return 415
        case .bodyTooLarge: return 413
        case .validation: return 422
        case .status(let status): return Self.httpStatus(status.code)
        }
    }

    var detail: JSONValue {
        switch self {
        case .badRequest(let message), .crossSite(let message): return .string(message)
        case .hostNotAllowed(let host):
            let shown = host.count > 100 ? host.prefix(100) + "…" : host
            return .string(
                "Host '\(shown)' is not served here: this server answers loopback names, its certificate's and those given with --allowed-host (DNS rebinding protection)")
        case .notFound: return .string("Not Found")
        case .methodNotAllowed: return .string("Method Not Allowed")
        case .unsupportedMediaType(let type):
            return .string("Unsupported media type '\(type)': this route takes Content-Type: application/json")
        case .bodyTooLarge(let limit): return .string("Request body exceeds the limit of \(limit) bytes")
        case .validation(let details): return .array(details)
        case .status(let status): return .string(status.message.isEmpty ? "\(status.code)" : status.message)
        }
    }

    /// grpc-gateway's mapping, except FAILED_PRECONDITION and ABORTED, which are conflicts
    /// with the task's current state (409) rather than bad requests.
    static func httpStatus(_ code: GRPCStatus.Code) -> Int {
        switch code {
        case .ok: return 200
        case .cancelled: return 499
        case .invalidArgument, .outOfRange: return 400
        case .deadlineExceeded: return 504
        case .notFound: return 404
        case .alreadyExists, .failedPrecondition, .aborted: return 409
        case .permissionDenied: return 403
        case .unauthenticated: return 401
        case .resourceExhausted: return 429
        case .unimplemented: return 501
        case .unavailable: return 503
        default: return 500
        }
    }
}

/// One REST request: routes the head, collects and decodes the JSON body into the RPC's
/// request message, calls the RPC in process and writes its answer as the legacy JSON (or,
/// for `/events`, as server-sent events). Lives on the request's event loop.
final class RESTExchange: HTTPStreamHandler {
    private let factory: RESTHandlerFactory
    private let writer: StatusRecordingWriter
    /// When the exchange began (the transport makes its handler as the request starts), for
    /// `RESTMetrics`.
    private let startedAt: NIODeadline?
    private var route: RESTRoute?
    private var query: Substring = ""
    /// The request's headers as call metadata, for the interceptors (`authorization`).
    private var metadata = Metadata()
    private var body = ByteBuffer()
    /// Set once an answer (or the RPC that will give it) is under way: later request bytes
    /// are read and dropped.
    private var answered = false
    private var call: InProcessCall?
    private var eventStreamStarted = false
    private var outputSender: OutputFileSender?
    private var statsStream: QueueStatsStream?
    /// The request's `If-None-Match`, for the dashboard's files.
    private var ifNoneMatch: String?
    private var isClosed = false

    init(factory: RESTHandlerFactory, writer: any HTTPStreamWriter) {
        self.factory = factory
        self.writer = StatusRecordingWriter(writer)
        self.startedAt = factory.restMetrics == nil ? nil : .now()
    }

    // MARK: - HTTPStreamHandler

    func receiveHead(_ fields: [HeaderField], endStream: Bool) {
        var method = "", target = "", contentType: String?, contentLength: Int?
        var authority: String?, origin: String?, fetchSite: String?
        for field in fields {
            switch field.name {
            case ":method": method = field.value
            case ":path": target = field.value
            case ":authority": authority = field.value
            case "content-type": contentType = field.value
            case "content-length": contentLength = Int(field.value)
            case "origin": origin = field.value
            case "sec-fetch-site": fetchSite = field.value.lowercased()
            case "if-none-match": ifNoneMatch = field.value
            default:
                if Metadata.isApplicationMetadata(field.name) { metadata.append(field.name, field.value) }
            }
        }
        // HEAD gets the status without a body: a body would break HTTP/1.1 framing.
        let withBody = method != "HEAD"
        if let authority, !factory.allowedHosts.allows(authority: authority) {
            return fail(.hostNotAllowed(authority), withBody: withBody)
        }
        let path = target.prefix { $0 != "?" }
        query = target.dropFirst(path.count + 1)
        let route: RESTRoute
        switch RESTRoute.match(method: method, path: path) {
        case .failure(let error): return fail(error, withBody: withBody)
        case .success(let matched): route = matched
        }
        self.route = route
        if route.changesState, let refusal = Self.crossSiteRefusal(authority: authority, origin: origin, fetchSite: fetchSite) {
            return fail(.crossSite(refusal))
        }
        // A body route needs the JSON content type, so that a browser cannot send it
        // cross-site without a CORS preflight (which this server never grants); a POST
        // without a body (cancel) may omit it.
        if route.takesBody || contentType != nil, method == "POST", !Self.isJSON(contentType ?? "") {
            return fail(.unsupportedMediaType(contentType ?? "none"))
        }
        if route.takesBody, let contentLength, contentLength > factory.maxBodyBytes {
            return fail(.bodyTooLarge(limit: factory.maxBodyBytes))
        }
        if endStream { receiveEnd() }
    }

    /// `application/json`, alone or with `charset=utf-8`.
    static func isJSON(_ contentType: String) -> Bool {
        let parts = contentType.lowercased().split(separator: ";").map { $0.filter { $0 != " " && $0 != "\t" } }
        guard parts.first == "application/json" else { return false }
        return parts.dropFirst().allSatisfy { $0 == "charset=utf-8" || $0 == "charset=\"utf-8\"" }
    }

    /// Why a request to a state-changing route is refused as coming from a browser page of
    /// another site, or `nil`: `Sec-Fetch-Site` says cross-site or same-site, or `Origin`
    /// names another origin than the one the request is addressed to.
    static func crossSiteRefusal(authority: String?, origin: String?, fetchSite: String?) -> String? {
        if let fetchSite, fetchSite == "cross-site" || fetchSite == "same-site" {
            return "Cross-site requests are refused (Sec-Fetch-Site: \(fetchSite))"
        }
        if let origin {
            let originAuthority = origin.range(of: "://").map { origin[$0.upperBound...].lowercased() }
            guard let authority, originAuthority == authority.lowercased() else {
                return "Requests from another origin are refused (Origin: \(origin))"
            }
        }
        return nil
    }

    func receiveBody(_ bytes: ByteBuffer) {
        guard !answered, route?.takesBody == true else { return }
        guard body.readableBytes + bytes.readableBytes <= factory.maxBodyBytes else {
            body = ByteBuffer()
            return fail(.bodyTooLarge(limit: factory.maxBodyBytes))
        }
        var bytes = bytes
        body.writeBuffer(&bytes)
    }

    func receiveEnd() {
        guard !answered, let route else { return }
        answered = true
        run(route)
    }

    func bodyDrained() {
        call?.drained()
        outputSender?.drained()
        statsStream?.drained()
    }

    func streamClosed(cleanly: Bool) {
        if let restMetrics = factory.restMetrics, let startedAt, !isClosed {
            restMetrics.requestEnded(route: RESTRouteName(route), status: writer.status, startedAt: startedAt)
        }
        answered = true
        isClosed = true
        outputSender?.cancel()
        outputSender = nil
        statsStream?.stop()
        statsStream = nil
        let call = self.call
        self.call = nil
        call?.close(delivered: cleanly)
    }

    // MARK: - Routes

    private func run(_ route: RESTRoute) {
        switch route {
        case .createTask:
            withBody(LegacyJSON.createTaskRequest) { request in
                self.unary(Swapline_V1_TaskService.createTask, request) { task in
                    self.respond(200, LegacyJSON.created(task))
                }
            }
        case .processSync:
            withBody(LegacyJSON.processSyncRequest) { request in
                self.unary(Swapline_V1_TaskService.processSync, request) { response in
                    self.respond(200, LegacyJSON.faceSwapResponse(response))
                }
            }
        case .getTask(let taskID):
            unary(Swapline_V1_TaskService.getTask, Swapline_V1_GetTaskRequest(taskID: taskID)) { task in
                self.respond(200, LegacyJSON.taskWithHistory(task))
            }
        case .cancelTask(let taskID):
            unary(Swapline_V1_TaskService.cancelTask, Swapline_V1_CancelTaskRequest(taskID: taskID)) { task in
                self.respond(200, .object(LegacyJSON.task(task)))
            }
        case .watchTask(let taskID):
            watch(taskID)
        case .listTasks:
            switch ListingJSON.listTasksRequest(query: query) {
            case .failure(let error): fail(error)
            case .success(let request):
                unary(Swapline_V1_TaskService.listTasks, request) { self.respond(200, LegacyJSON.taskList($0)) }
            }
        case .queueStats:
            switch ListingJSON.queueStatsRequest(query: query) {
            case .failure(let error): fail(error)
            case .success(let request):
                unary(Swapline_V1_TaskService.getQueueStats, request) { self.respond(200, LegacyJSON.queueStats($0)) }
            }
        case .fetchTask:
            switch Self.fetchRequest(query: query) {
            case .failure(let error): fail(error)
            case .success(let request):
                unary(Swapline_V1_ConsumerService.fetchTask, request) { response in
                    if let task = response.task {
                        self.respond(200, LegacyJSON.fetched(response, task: task))
                    } else {
                        self.writer.writeHead(status: 204, headers: [], endStream: true)
                    }
                }
            }
        case .updateStatus:
            withBody(LegacyJSON.updateStatusRequest) { request in
                self.unary(Swapline_V1_ConsumerService.updateStatus, request) { task in
                    self.respond(200, .object(LegacyJSON.task(task)))
                }
            }
        case .health:
            unary(Grpc_Health_V1_Health.check, Grpc_Health_V1_HealthCheckRequest(service: "")) { response in
                let serving = response.status == .serving
                self.respond(
                    serving ? 200 : 503,
                    .object([("status", .string(serving ? "ok" : "unavailable")), ("serving_status", .string(serving ? "SERVING" : "NOT_SERVING"))]))
            }
        case .openAPI:
            respond(200, bytes: factory.openAPIDocument)
        case .metrics:
            guard let metrics = factory.metrics else { return fail(.notFound) }
            MetricsResponse.write(metrics, to: writer) { [weak self] in self?.isClosed == false }
        case .output(let path):
            serveOutput(path)
        case .dashboard(let asset):
            serveDashboard(asset)
        case .queueStatsEvents:
            switch ListingJSON.queueStatsRequest(query: query) {
            case .failure(let error): fail(error)
            case .success(let request): streamQueueStats(request)
            }
        }
    }

    /// Answers with a file of the dashboard, or 304 when the browser's copy is current.
    private func serveDashboard(_ asset: DashboardAsset) {
        let headers = [HeaderField("etag", asset.etag)] + DashboardAsset.responseHeaders
        if let ifNoneMatch, asset.isMatched(byIfNoneMatch: ifNoneMatch) {
            return writer.writeHead(status: 304, headers: headers, endStream: true)
        }
        respond(200, bytes: asset.body, contentType: asset.contentType, headers: headers)
    }

    /// GetQueueStats' figures for `request` as server-sent events, while the client reads.
    private func streamQueueStats(_ request: Swapline_V1_GetQueueStatsRequest) {
        guard let feed = factory.queueStats else { return fail(.notFound) }
        // Each read is GetQueueStats in process with this request's token: the figures its caller may see.
        let read: QueueStatsStream.Read = { [weak self] done in
            self?.callUnary(Swapline_V1_TaskService.getQueueStats, request) { result, _ in done(result.map(LegacyJSON.queueStats)) }
        }
        let stream = QueueStatsStream(feed: feed, writer: writer, read: read) { [weak self] error in self?.fail(error) }
        statsStream = stream
        stream.start()
    }

    /// Answers with a stored result file, opened and streamed by `OutputFiles` off the event
    /// loop (with `nosniff`).
    private func serveOutput(_ components: [String]) {
        guard let files = factory.outputFiles, let file = components.last else { return fail(.notFound) }
        let contentType = MediaType.forFileExtension(String(file.split(separator: ".").last ?? ""))
        files.threadPool.runIfActive(eventLoop: writer.eventLoop) { files.open(components) }
            .assumeIsolated().whenComplete { [self] result in
                guard case .success(let opened?) = result else { return fail(.notFound) }
                guard !isClosed else { return files.close(opened) }
                let sender = OutputFileSender(file: opened, files: files, writer: writer)
                outputSender = sender
                sender.start(contentType: contentType)
            }
    }

    /// `?consumer_id=&workflow=&wait_ms=`; `workflow` may repeat or list names with commas.
    static func fetchRequest(query: Substring) -> Result<Swapline_V1_FetchTaskRequest, RESTError> {
        var request = Swapline_V1_FetchTaskRequest()
        for pair in query.split(separator: "&") {
            let name = pair.prefix { $0 != "=" }
            // Query values are percent-encoded, with '+' for a space.
            let value = GRPCMessageEncoding.decode(String(pair.dropFirst(name.count + 1).map { $0 == "+" ? " " : $0 }))
            switch name {
            case "consumer_id":
                guard value.utf8.count <= MessageLimits.idBytes else {
                    return .failure(.validation([BodyReader.tooLong(
                        [.string("query"), .string("consumer_id")], value, maxBytes: MessageLimits.idBytes)]))
                }
                request.consumerID = value
            case "workflow":
                for name in value.split(separator: ",") {
                    // The same limits as FetchTaskRequest.workflows on the gRPC surface.
                    guard name.utf8.count <= MessageLimits.nameBytes else {
                        return .failure(.validation([BodyReader.tooLong(
                            [.string("query"), .string("workflow")], String(name), maxBytes: MessageLimits.nameBytes)]))
                    }
                    guard request.workflows.count < MessageLimits.workflowsPerFetch else {
                        let limit = MessageLimits.workflowsPerFetch
                        return .failure(.validation([BodyReader.issue(
                            "too_long", [.string("query"), .string("workflow")],
                            "List should have at most \(limit) items after validation", .string(value),
                            context: ["field_type": "List", "max_length": "\(limit)"])]))
                    }
                    request.workflows.append(String(name))
                }
            case "wait_ms":
                guard let waitMs = Int32(value) else {
                    return .failure(.validation([BodyReader.issue(
                        "int_parsing", [.string("query"), .string("wait_ms")],
                        "Input should be a valid integer, unable to parse string as an integer", .string(value))]))
                }
                request.waitMs = waitMs
            default: break
            }
        }
        return .success(request)
    }

    // MARK: - Calling the RPCs

    private func withBody<Request>(
        _ decode: (JSONValue) -> Result<Request, BodyErrors>, _ body: (Request) -> Void
    ) {
        let json: JSONValue
        if self.body.readableBytes == 0 {
            // FastAPI's answer to a missing body.
            return fail(.validation([BodyReader.issue("missing", [.string("body")], "Field required", .null)]))
        }
        do {
            json = try JSONValue(parsing: self.body.readableBytesView)
        } catch {
            return fail(.validation([BodyReader.issue(
                "json_invalid", [.string("body"), .integer(Int64(error.offset))], "JSON decode error", .object([]),
                context: ["error": error.message])]))
        }
        switch decode(json) {
        case .success(let request): body(request)
        case .failure(let errors): fail(.validation(errors.details))
        }
    }

    /// Runs `method` through the router's interceptors and its handler, in process: the
    /// request and the response messages stay Swift values.
    private func start<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, onMessage: @escaping (any RPCMessage) -> Void,
        onEnd: @escaping (GRPCStatus, Metadata) -> Void
    ) {
        let call = InProcessCall(
            eventLoop: writer.eventLoop, queuedBytes: { [weak self] in self?.writer.queuedBodyBytes ?? 0 },
            onMessage: onMessage, onEnd: onEnd)
        self.call = call
        call.start(
            router: factory.router, method: method, request: request, metadata: metadata, connection: writer.connectionID,
            peerAddress: writer.peerAddress)
    }

    /// Answers with `answer` of the unary RPC's response, or with its error.
    private func unary<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, _ answer: @escaping (Response) -> Void
    ) {
        callUnary(method, request) { [weak self] result, trailers in
            switch result {
            case .success(let reply): answer(reply)
            case .failure(let error): self?.fail(error, retryAfter: trailers["retry-after"])
            }
        }
    }

    /// Calls a unary RPC: its response, or its status as an error, and its trailers.
    private func callUnary<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, _ done: @escaping (Result<Response, RESTError>, Metadata) -> Void
    ) {
        var reply: Response?
        start(method, request, onMessage: { reply = $0 as? Response }) { status, trailers in
            guard status.code == .ok else { return done(.failure(.status(status)), trailers) }
            guard let reply else {
                return done(.failure(.status(GRPCStatus(.internal, "\(method.descriptor.method) answered without a message"))), trailers)
            }
            done(.success(reply), trailers)
        }
    }

    /// WatchTask as server-sent events: one `data:` event per change, ending after the
    /// terminal state. The head waits for the first event, so an unknown task is still a 404.
    private func watch(_ taskID: String) {
        start(Swapline_V1_TaskService.watchTask, Swapline_V1_WatchTaskRequest(taskID: taskID), onMessage: { [weak self] message in
            guard let self, let event = message as? Swapline_V1_TaskEvent, let task = event.task else { return }
            if !eventStreamStarted {
                eventStreamStarted = true
                writer.writeHead(
                    status: 200,
                    headers: [HeaderField("content-type", "text/event-stream"), HeaderField("cache-control", "no-cache")],
                    endStream: false)
            }
            var text = "id: \(event.sequence)\ndata: "
            text += String(decoding: JSONValue.object(LegacyJSON.task(task)).serialized(), as: UTF8.self)
            text += "\n\n"
            writer.writeBody(ByteBuffer(string: text))
        }) { [weak self] status, _ in
            guard let self else { return }
            if eventStreamStarted {
                writer.writeEnd(trailers: [])
            } else {
                fail(.status(status.code == .ok ? GRPCStatus(.internal, "the watch ended without an event") : status))
            }
        }
    }

    // MARK: - Writing

    private func respond(_ status: Int, _ json: JSONValue, headers: [HeaderField] = []) {
        respond(status, bytes: ByteBuffer(bytes: json.serialized()), headers: headers)
    }

    private func respond(_ status: Int, bytes: ByteBuffer, contentType: String = "application/json", headers: [HeaderField] = []) {
        writer.writeHead(
            status: status,
            headers: [HeaderField("content-type", contentType), HeaderField("content-length", String(bytes.readableBytes))]
                + headers,
            endStream: false)
        writer.writeBody(bytes)
        writer.writeEnd(trailers: [])
    }

    /// Answers `error`; `retryAfter` is the failed RPC's `retry-after` trailer (seconds), sent
    /// as `Retry-After`.
    private func fail(_ error: RESTError, withBody: Bool = true, retryAfter: String? = nil) {
        answered = true
        var headers: [HeaderField] = []
        if case .methodNotAllowed(let allowed) = error { headers.append(HeaderField("allow", allowed.joined(separator: ", "))) }
        // RFC 6750: a 401 names the scheme the client should authenticate with.
        if case .status(let status) = error, status.code == .unauthenticated { headers.append(HeaderField("www-authenticate", "Bearer")) }
        if let retryAfter {
            headers.append(HeaderField("retry-after", retryAfter))
        } else if case .status(let status) = error, status.code == .resourceExhausted || status.code == .unavailable {
            // A limit reached (429) or a store that cannot write (503) passes: worth a retry soon.
            headers.append(HeaderField("retry-after", "1"))
        }
        guard withBody else { return writer.writeHead(status: error.httpStatus, headers: headers, endStream: true) }
        respond(error.httpStatus, .object([("detail", error.detail)]), headers: headers)
    }
}
