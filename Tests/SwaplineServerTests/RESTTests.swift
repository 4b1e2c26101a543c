import Foundation
import H2Transport
import NIOCore
import NIOEmbedded
import NIOPosix
import RPCCore
import SwaplineCore
import SwaplineMessages
import SwaplineTestKit
import Testing
@testable import SwaplineServer

@Suite struct LegacyJSONTests {
    @Test func bodyErrorsNameEveryFieldLikeFastAPI() throws {
        let body = try JSONValue(parsing: Array(#"{"source_url":1,"priority":1.5,"options":{"k":2}}"#.utf8))
        guard case .failure(let errors) = LegacyJSON.createTaskRequest(body) else {
            Issue.record("accepted")
            return
        }
        let found = errors.details.map { ($0["type"]!, $0["loc"]!) }
        #expect(found.map(\.0) == ["string_type", "missing", "string_type", "int_type"])
        #expect(found.map(\.1) == [
            ["body", "source_url"], ["body", "target_url"], ["body", "options", "k"], ["body", "priority"],
        ])
    }

    @Test func bodiesOverTheMessageLimitsAre422LikeOtherSchemaErrors() throws {
        let options = (0...MessageLimits.mapEntries).map { #""k\#($0)":"v""# }.joined(separator: ",")
        let longURL = String(repeating: "u", count: MessageLimits.urlBytes + 1)
        let longKey = String(repeating: "k", count: MessageLimits.idBytes + 1)
        let body = try JSONValue(parsing: Array(
            #"{"source_url":"\#(longURL)","target_url":"t","idempotency_key":"\#(longKey)","options":{\#(options)}}"#.utf8))
        guard case .failure(let errors) = LegacyJSON.createTaskRequest(body) else {
            Issue.record("accepted")
            return
        }
        #expect(errors.details.map { $0["type"]! } == ["string_too_long", "too_long", "string_too_long"])
        #expect(errors.details.map { $0["loc"]! } == [["body", "source_url"], ["body", "options"], ["body", "idempotency_key"]])
        #expect(errors.details[0]["msg"] == "String should have at most 4096 bytes")
        #expect(errors.details[1]["msg"] == "Dictionary should have at most 64 items after validation, not 65")
    }

    @Test func fetchQueryOverTheLimitsIs422() {
        let workflows = Array(repeating: "face_swap", count: MessageLimits.workflowsPerFetch + 1).joined(separator: ",")
        guard case .failure(.validation(let details)) = RESTExchange.fetchRequest(query: "workflow=\(workflows)"[...]) else {
            Issue.record("accepted")
            return
        }
        #expect(details.first?["type"] == "too_long")
        let consumer = String(repeating: "c", count: MessageLimits.idBytes + 1)
        guard case .failure(.validation(let idDetails)) = RESTExchange.fetchRequest(query: "consumer_id=\(consumer)"[...]) else {
            Issue.record("accepted")
            return
        }
        #expect(idDetails.first?["loc"] == ["query", "consumer_id"])
    }

    @Test func nullIsAbsentForOptionalFields() throws {
        let body = try JSONValue(parsing: Array(#"{"source_url":"a","target_url":"b","model":null,"priority":null}"#.utf8))
        let request = try LegacyJSON.createTaskRequest(body).get()
        #expect(request.params?.model == "" && request.priority == 0)
    }
}

@Suite struct RESTRouteTests {
    @Test func matchesTheLegacyRoutes() throws {
        #expect(try RESTRoute.match(method: "POST", path: "/api/face-swap/create-task").get() == .createTask)
        #expect(try RESTRoute.match(method: "GET", path: "/api/face-swap/task/t%201").get() == .getTask("t 1"))
        #expect(try RESTRoute.match(method: "POST", path: "/api/face-swap/task/t/cancel").get() == .cancelTask("t"))
        #expect(try RESTRoute.match(method: "GET", path: "/api/face-swap/task/t/events").get() == .watchTask("t"))
        #expect(try RESTRoute.match(method: "GET", path: "/api/comm/task/fetch").get() == .fetchTask)
    }

    @Test func unknownPathsAre404AndOtherMethods405() {
        #expect(throws: RESTError.notFound) { try RESTRoute.match(method: "GET", path: "/api/face-swap/task/").get() }
        #expect(throws: RESTError.notFound) { try RESTRoute.match(method: "GET", path: "api") .get() }
        #expect(throws: RESTError.methodNotAllowed(allowed: ["GET"])) { try RESTRoute.match(method: "PUT", path: "/health").get() }
    }

    @Test func outputPathsWithControlCharactersAre400() throws {
        for path in ["/outputs/t/k/a%00.jpg", "/outputs/t/a%0a.jpg", "/outputs/t%7f/k/a.jpg", "/outputs/t/k/a%1b[0m.jpg"] {
            #expect(throws: RESTError.badRequest("Control characters (such as %00) are not allowed in an output path"), "\(path)") {
                try RESTRoute.match(method: "GET", path: Substring(path)).get()
            }
        }
        #expect(try RESTRoute.match(method: "GET", path: "/outputs/t/k/a%20b.jpg").get() == .output(path: ["t", "k", "a b.jpg"]))
    }
}

/// What `/outputs/` opens: regular files whose real path stays inside the directory.
@Suite struct OutputFilesTests {
    let root: URL
    let files: OutputFiles

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("outputs-\(UUID().uuidString)")
        let manager = FileManager.default
        try manager.createDirectory(at: root.appendingPathComponent("outputs/t/k"), withIntermediateDirectories: true)
        try manager.createDirectory(at: root.appendingPathComponent("outside"), withIntermediateDirectories: true)
        try Data("result".utf8).write(to: root.appendingPathComponent("outputs/t/k/a.jpg"))
        try Data("secret".utf8).write(to: root.appendingPathComponent("outside/secret.txt"))
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("outputs/t/k/out.txt").path, withDestinationPath: root.appendingPathComponent("outside/secret.txt").path)
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("outputs/t/dir").path, withDestinationPath: "../../outside")
        try manager.createSymbolicLink(atPath: root.appendingPathComponent("outputs/t/k/in.jpg").path, withDestinationPath: "a.jpg")
        files = OutputFiles(directory: root.appendingPathComponent("outputs").path, threadPool: NIOThreadPool.singleton)
    }

    @Test func servesRegularFilesInsideTheDirectory() throws {
        let opened = try #require(files.open(["t", "k", "a.jpg"]))
        #expect(opened.size == 6)
        try opened.handle.close()
        // A link that stays inside is followed.
        #expect(files.open(["t", "k", "in.jpg"])?.size == 6)
    }

    @Test func refusesLinksOutOfTheDirectoryDirectoriesAndMissingFiles() {
        #expect(files.open(["t", "k", "out.txt"]) == nil)
        #expect(files.open(["t", "dir", "secret.txt"]) == nil)
        #expect(files.open(["t", "k"]) == nil)
        #expect(files.open(["t", "k", "missing.jpg"]) == nil)
    }
}

/// The REST handler over the real task RPCs, with a recording transport.
@Suite struct RESTExchangeTests {
    let loop = EmbeddedEventLoop()
    let factory: RESTHandlerFactory

    init(allowedHosts: AllowedHosts = .any) throws {
        let scheduler = TaskScheduler(configuration: SchedulerConfiguration(), queue: InMemoryTaskQueue(rules: TaskRules()))
        var router = RPCRouter()
        TaskService(scheduler: scheduler).register(in: &router)
        ConsumerService(scheduler: scheduler).register(in: &router)
        HealthService(services: router.serviceNames).register(in: &router)
        factory = RESTHandlerFactory(router: router, allowedHosts: allowedHosts)
    }

    private static let json = HeaderField("content-type", "application/json")

    /// Status and body of one request; a body is sent as JSON unless `headers` name a content type.
    private func request(_ method: String, _ path: String, body: String? = nil, headers: [HeaderField] = []) -> (Int, String) {
        let (status, _, text) = exchange(method, path, body: body, headers: headers)
        return (status, text)
    }

    /// Status, response headers and body of one request.
    private func exchange(_ method: String, _ path: String, body: String? = nil, headers: [HeaderField] = []) -> (Int, [HeaderField], String) {
        let writer = RecordingStreamWriter(loop: loop)
        let handler = factory.makeHandler(writer: writer)
        let contentType = body != nil && !headers.contains { $0.name == "content-type" } ? [Self.json] : []
        handler.receiveHead(
            [HeaderField(":method", method), HeaderField(":path", path)] + contentType + headers, endStream: body == nil)
        if let body {
            handler.receiveBody(ByteBuffer(string: body))
            handler.receiveEnd()
        }
        loop.run()
        handler.streamClosed(cleanly: true)
        var status = 0
        var responseHeaders: [HeaderField] = []
        var bytes: [UInt8] = []
        for event in writer.events {
            switch event {
            case .head(let code, let fields, _):
                status = code
                responseHeaders = fields
            case .body(let chunk): bytes += chunk
            default: break
            }
        }
        return (status, responseHeaders, String(decoding: bytes, as: UTF8.self))
    }

    private let legacyBody = #"{"source_url":"https://example.com/a.jpg","target_url":"https://example.com/b.jpg"}"#

    @Test func createThenGetThroughTheRPCs() throws {
        let (status, body) = request("POST", "/api/face-swap/create-task", body: legacyBody)
        #expect(status == 200)
        let taskID = try #require(try JSONValue(parsing: Array(body.utf8))["task_id"])
        guard case .string(let id) = taskID else {
            Issue.record("no task id")
            return
        }
        #expect(body == #"{"task_id":"\#(id)","status":"PENDING"}"#)
        let (getStatus, task) = request("GET", "/api/face-swap/task/\(id)")
        #expect(getStatus == 200 && task.hasPrefix(#"{"taskId":"\#(id)","workflow":"face_swap""#))
    }

    @Test func errorsKeepFastAPIsShape() {
        #expect(request("GET", "/nope") == (404, #"{"detail":"Not Found"}"#))
        #expect(request("GET", "/api/face-swap/task/task_x") == (404, #"{"detail":"task 'task_x' does not exist"}"#))
        #expect(request("POST", "/api/face-swap/create-task", body: "{", headers: [HeaderField("content-type", "text/plain")]).0 == 415)
        #expect(request("POST", "/api/face-swap/create-task", body: "{").0 == 422)
        #expect(request("POST", "/api/face-swap/create-task", body: "{}", headers: [HeaderField("content-length", "9999999")]).0 == 413)
        #expect(request("POST", "/api/face-swap/create-task", body: #"{"source_url":"x","target_url":"y"}"#).0 == 400)
        #expect(request("GET", "/api/comm/task/fetch?wait_ms=x").0 == 422)
    }

    @Test func processThatOutlivesItsWaitIs504NamingTheTask() throws {
        let writer = RecordingStreamWriter(loop: loop)
        let handler = factory.makeHandler(writer: writer)
        handler.receiveHead([HeaderField(":method", "POST"), HeaderField(":path", "/api/face-swap/process"), Self.json], endStream: false)
        handler.receiveBody(ByteBuffer(string: legacyBody))
        handler.receiveEnd()
        loop.run()
        #expect(writer.events.isEmpty)
        loop.advanceTime(by: .seconds(121))
        guard case .head(504, _, _)? = writer.events.first, case .body(let body)? = writer.events.dropFirst().first else {
            Issue.record("expected a 504, got \(writer.events)")
            return
        }
        #expect(String(decoding: body, as: UTF8.self).contains("did not finish before the deadline"))
    }

    @Test func bodyRoutesTakeOnlyJSON() {
        let create = "/api/face-swap/create-task"
        for type in ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\""] {
            #expect(request("POST", create, body: legacyBody, headers: [HeaderField("content-type", type)]).0 == 200, "\(type)")
        }
        for type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/json; charset=latin1", "application/merge-patch+json"] {
            let (status, body) = request("POST", create, body: legacyBody, headers: [HeaderField("content-type", type)])
            #expect(status == 415 && body.contains("application/json"), "\(type)")
        }
        // No content type at all: a browser's no-cors POST.
        let writer = RecordingStreamWriter(loop: loop)
        let handler = factory.makeHandler(writer: writer)
        handler.receiveHead([HeaderField(":method", "POST"), HeaderField(":path", create)], endStream: false)
        guard case .head(415, _, _)? = writer.events.first else {
            Issue.record("expected 415, got \(writer.events)")
            return
        }
    }

    @Test func cancelWithoutABodyNeedsNoContentTypeButRefusesAnotherOne() {
        #expect(request("POST", "/api/face-swap/task/task_x/cancel").0 == 404)
        #expect(request("POST", "/api/face-swap/task/task_x/cancel", headers: [HeaderField("content-type", "text/plain")]).0 == 415)
    }

    @Test func stateChangingRoutesRefuseCrossSiteBrowsers() {
        let fetch = "/api/comm/task/fetch?wait_ms=0"
        let here = HeaderField(":authority", "127.0.0.1:50051")
        for refused in [
            [HeaderField("sec-fetch-site", "cross-site")], [HeaderField("sec-fetch-site", "same-site")],
            [here, HeaderField("origin", "https://evil.example")], [here, HeaderField("origin", "null")],
            [HeaderField("origin", "http://127.0.0.1:50051")],
        ] {
            let (status, body) = request("GET", fetch, headers: refused)
            #expect(status == 403 && body.contains("refused"), "\(refused)")
            #expect(request("POST", "/api/face-swap/create-task", body: legacyBody, headers: refused).0 == 403)
            #expect(request("POST", "/api/face-swap/task/task_x/cancel", headers: refused).0 == 403)
        }
        for allowed in [[], [HeaderField("sec-fetch-site", "same-origin")], [HeaderField("sec-fetch-site", "none")],
                        [here, HeaderField("origin", "http://127.0.0.1:50051")]] {
            #expect(request("GET", fetch, headers: allowed).0 == 204, "\(allowed)")
        }
        // Reading routes change nothing and answer a cross-site request (without CORS headers, so
        // the page cannot read the answer).
        #expect(request("GET", "/health", headers: [HeaderField("sec-fetch-site", "cross-site")]).0 == 200)
    }

    @Test func noRouteSendsCORSHeaders() {
        let origin = [HeaderField("origin", "https://evil.example")]
        for (method, path) in [("GET", "/health"), ("OPTIONS", "/api/face-swap/create-task"), ("GET", "/openapi.json"),
                               ("GET", "/api/comm/task/fetch"), ("GET", "/nope")] {
            let (_, headers, _) = exchange(method, path, headers: origin)
            #expect(!headers.contains { $0.name.hasPrefix("access-control-") }, "\(method) \(path)")
        }
    }

    @Test func theValidationAnswerIsBoundedWhateverTheRequest() throws {
        let long = String(repeating: "x", count: 50_000)
        // 64 options (the most a map may have), each value a list of long strings: an issue
        // each, with a long input to echo.
        let values = Array(repeating: #""\#(long.prefix(100))""#, count: 80).joined(separator: ",")
        let options = (0..<64).map { #""k\#($0)":[\#(values)]"# }.joined(separator: ",")
        let body = #"{"\#(long)":"\#(long)","options":{\#(options)},"priority":"\#(long)"}"#
        let (status, answer) = request("POST", "/api/face-swap/create-task", body: body)
        #expect(status == 422)
        guard case .array(let issues)? = try JSONValue(parsing: Array(answer.utf8))["detail"] else {
            Issue.record("no detail list in \(answer.prefix(200))")
            return
        }
        #expect(issues.count == BodyReader.maxIssues)
        #expect(answer.utf8.count < 32 * 1024, "\(answer.utf8.count) bytes for a \(body.utf8.count)-byte request")
        // The missing fields are still named first, with the body echoed in short.
        #expect(answer.hasPrefix(#"{"detail":[{"type":"missing","loc":["body","source_url"]"#))
        #expect(answer.contains("xxxx…"))
    }

    @Test func fetchWithNothingQueuedIs204() {
        #expect(request("GET", "/api/comm/task/fetch?wait_ms=0&consumer_id=a+b") == (204, ""))
    }

    @Test func healthIsServing() {
        #expect(request("GET", "/health") == (200, #"{"status":"ok","serving_status":"SERVING"}"#))
    }

    /// Records what the interceptors of the pipeline see of each call.
    final class Recorder: ServerInterceptor, @unchecked Sendable {
        var seen: [(String, CallSurface, String?)] = []
        func intercept(_ context: inout ServerContext) -> GRPCStatus? {
            seen.append((context.method.path, context.surface, context.metadata["x-request-id"]))
            return context.metadata["x-refuse"] == nil ? nil : GRPCStatus(.permissionDenied, "refused here")
        }
    }

    @Test func restCallsPassTheInterceptorsWithTheirHeaders() throws {
        let recorder = Recorder()
        let scheduler = TaskScheduler(configuration: SchedulerConfiguration(), queue: InMemoryTaskQueue(rules: TaskRules()))
        var router = RPCRouter()
        router.interceptors = [recorder]
        TaskService(scheduler: scheduler).register(in: &router)
        HealthService(services: router.serviceNames).register(in: &router)
        let writer = RecordingStreamWriter(loop: loop)
        let handler = RESTHandlerFactory(router: router).makeHandler(writer: writer)
        handler.receiveHead(
            [HeaderField(":method", "GET"), HeaderField(":path", "/api/face-swap/task/task_1"), HeaderField("x-request-id", "r1"),
             HeaderField("x-refuse", "1")],
            endStream: true)
        loop.run()
        #expect(recorder.seen.count == 1 && recorder.seen[0].0 == "/swapline.v1.TaskService/GetTask")
        #expect(recorder.seen[0].1 == .rest && recorder.seen[0].2 == "r1")
        guard case .head(403, _, _)? = writer.events.first else {
            Issue.record("expected 403, got \(writer.events)")
            return
        }
    }

    @Test func onALoopbackListenerOnlyLoopbackAndAllowedNamesAreAnswered() throws {
        let guarded = try RESTExchangeTests(allowedHosts: AllowedHosts(listeningOn: "127.0.0.1", extra: ["api.example.com"]))
        for host in ["localhost", "LOCALHOST:50051", "127.0.0.1:50051", "127.1.2.3", "[::1]:8080", "[::1]", "localhost.",
                     "api.example.com:443", "API.example.com"] {
            #expect(guarded.request("GET", "/health", headers: [HeaderField(":authority", host)]).0 == 200, "\(host)")
        }
        for host in ["evil.example", "evil.example:50051", "127.0.0.1.evil.example", "localhost.evil.example", "[::2]:1",
                     "example.com"] {
            let (status, body) = guarded.request("GET", "/health", headers: [HeaderField(":authority", host)])
            #expect(status == 421 && body.contains("--allowed-host"), "\(host)")
        }
        // Also before the route is known: an unknown path or /outputs/ says nothing about the server.
        #expect(guarded.request("GET", "/outputs/t/k/f.jpg", headers: [HeaderField(":authority", "evil.example")]).0 == 421)
    }

    @Test func elsewhereAnyNameIsAnsweredUnlessNamesAreGiven() throws {
        #expect(AllowedHosts(listeningOn: "0.0.0.0", extra: []).allows(authority: "anything.example"))
        #expect(AllowedHosts(listeningOn: "192.0.2.1", extra: []).allows(authority: "anything.example"))
        let named = AllowedHosts(listeningOn: "192.0.2.1", extra: ["tasks.example"])
        #expect(named.allows(authority: "tasks.example:8443") && named.allows(authority: "localhost"))
        #expect(!named.allows(authority: "anything.example"))
        let v6 = AllowedHosts(listeningOn: "127.0.0.1", extra: ["2001:db8::1", "[2001:db8::2]"])
        #expect(v6.allows(authority: "[2001:db8::1]:8080") && v6.allows(authority: "[2001:DB8::2]"))
        #expect(!v6.allows(authority: "[2001:db8::3]"))
        // The certificate's names are answered, and do not turn the check on elsewhere.
        let tls = AllowedHosts(listeningOn: "127.0.0.1", extra: [], certificateNames: ["swapline.test"])
        #expect(tls.allows(authority: "swapline.test:443") && !tls.allows(authority: "evil.example"))
        #expect(AllowedHosts(listeningOn: "192.0.2.1", extra: [], certificateNames: ["swapline.test"]).allows(authority: "evil.example"))
    }

    @Test func statusMappingFollowsTheIssue() {
        let expected: [(GRPCStatus.Code, Int)] = [
            (.invalidArgument, 400), (.notFound, 404), (.failedPrecondition, 409), (.unauthenticated, 401),
            (.permissionDenied, 403), (.resourceExhausted, 429), (.unavailable, 503), (.deadlineExceeded, 504),
            (.unimplemented, 501), (.internal, 500),
        ]
        for (code, status) in expected { #expect(RESTError.httpStatus(code) == status) }
    }
}

@Suite struct OpenAPIDocumentTests {
    @Test func committedDocumentIsTheServedOne() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let committed = try Data(contentsOf: root.appendingPathComponent("docs/openapi.json"))
        #expect(Array(committed) == OpenAPIDocument.serialized(), "regenerate with: swapline openapi > docs/openapi.json")
    }
}

@Suite struct ListingQueryTests {
    @Test func listQueriesBecomeRequests() throws {
        let request = try ListingJSON.listTasksRequest(
            query: "status=PENDING&status=FAILED,CANCELLED&workflow=face_swap&created_after_ms=5&created_before_ms=9&idempotency_key=a%20b&page_size=7&page_token=ab&other=x"[...]
        ).get()
        #expect(request == Swapline_V1_ListTasksRequest(
            statuses: [.pending, .failed, .cancelled], workflow: "face_swap", createdAfterMs: 5, createdBeforeMs: 9,
            idempotencyKey: "a b", pageSize: 7, pageToken: "ab"))
        #expect(try ListingJSON.queueStatsRequest(query: "workflow=face_swap"[...]).get().workflow == "face_swap")
    }

    @Test func badListQueriesAreValidationErrorsNamingTheParameter() {
        for (query, parameter) in [("status=DONE", "status"), ("status=", "status"), ("status=pending", "status"), ("status=FAILED,", "status"), ("page_size=many", "page_size"), ("created_after_ms=1.5", "created_after_ms"),
            ("workflow=\(String(repeating: "w", count: 129))", "workflow")]
        {
            guard case .failure(.validation(let details)) = ListingJSON.listTasksRequest(query: query[...]),
                case .object(let members)? = details.first, let location = members.first(where: { $0.0 == "loc" })?.1
            else {
                Issue.record("\(query) was accepted")
                continue
            }
            #expect(location == .array([.string("query"), .string(parameter)]))
        }
    }
}
