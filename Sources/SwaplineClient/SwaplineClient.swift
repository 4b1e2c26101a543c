public import CurlHTTP
import NIOCore
public import RPCCore
public import SwaplineMessages

/// Typed client of a Swapline server: every RPC of `TaskService` and `ConsumerService`, spoken
/// as gRPC through `CurlHTTPClient`: HTTP/2 with prior knowledge (h2c, a connection per call,
/// see docs/architecture.md) for an `http://` server, HTTP/2 over TLS (ALPN, calls share a
/// connection) for an `https://` one. Every call throws `SwaplineClientError`.
///
/// An `https://` server's certificate is always verified, against the system's trust store or
/// only against `caFile`; a server that fails verification is UNAVAILABLE, with the reason.
///
/// Each call sends `metadata` (given once, e.g. the `authorization` bearer token) followed by
/// the call's own `metadata` argument.
public final class SwaplineClient: Sendable {
    /// Base URL of the server, e.g. `http://127.0.0.1:50051` or `https://swapline.example.com`.
    public let serverURL: String
    /// PEM file of the certificate authorities an `https://` server's certificate must chain
    /// to (a private CA); `nil`: the system's trust store.
    public let caFile: String?
    /// `HOST:PORT` to connect to instead of the URL's host and port, which stay what the
    /// certificate is checked against (`swapline serve --workers` reaching its own port).
    public let connectTo: String?
    /// Sent with every call.
    public let metadata: Metadata
    private let http: CurlHTTPClient
    private let maxMessageSize = 4 * 1024 * 1024

    public init(
        serverURL: String, caFile: String? = nil, connectTo: String? = nil, http: CurlHTTPClient = CurlHTTPClient(),
        metadata: Metadata = Metadata()
    ) {
        self.serverURL = serverURL.hasSuffix("/") ? String(serverURL.dropLast()) : serverURL
        self.caFile = caFile
        self.connectTo = connectTo
        self.http = http
        self.metadata = metadata
    }

    /// A client of the same server that sends `Authorization: Bearer token` with every call
    /// (after any other metadata it sends).
    public convenience init(
        serverURL: String, caFile: String? = nil, connectTo: String? = nil, http: CurlHTTPClient = CurlHTTPClient(),
        bearerToken: String?
    ) {
        var metadata = Metadata()
        if let bearerToken, !bearerToken.isEmpty { metadata.append("authorization", "Bearer \(bearerToken)") }
        self.init(serverURL: serverURL, caFile: caFile, connectTo: connectTo, http: http, metadata: metadata)
    }

    public func createTask(
        _ request: Swapline_V1_CreateTaskRequest, timeout: Duration = .seconds(30), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_Task {
        try await unary(Swapline_V1_TaskService.createTask, request, timeout: timeout, metadata: metadata)
    }

    /// Runs a job to completion; `timeout` is also how long the server waits for it.
    public func processSync(
        _ request: Swapline_V1_ProcessSyncRequest, timeout: Duration = .seconds(120), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_FaceSwapResponse {
        try await unary(Swapline_V1_TaskService.processSync, request, timeout: timeout, metadata: metadata)
    }

    public func getTask(
        id: String, timeout: Duration = .seconds(30), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_Task {
        try await unary(Swapline_V1_TaskService.getTask, Swapline_V1_GetTaskRequest(taskID: id), timeout: timeout, metadata: metadata)
    }

    public func cancelTask(
        id: String, timeout: Duration = .seconds(30), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_Task {
        try await unary(
            Swapline_V1_TaskService.cancelTask, Swapline_V1_CancelTaskRequest(taskID: id), timeout: timeout, metadata: metadata)
    }

    /// The task's events: its current state first, then each change, ending after a terminal state.
    public func watchTask(id: String, metadata: Metadata = Metadata()) -> GRPCResponseStream<Swapline_V1_TaskEvent> {
        call(Swapline_V1_TaskService.watchTask, Swapline_V1_WatchTaskRequest(taskID: id), timeout: nil, metadata: metadata)
    }

    /// A page of tasks, newest first; pass the answer's `nextPageToken` (with the same filters)
    /// for the next page.
    public func listTasks(
        _ request: Swapline_V1_ListTasksRequest, timeout: Duration = .seconds(30), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_ListTasksResponse {
        try await unary(Swapline_V1_TaskService.listTasks, request, timeout: timeout, metadata: metadata)
    }

    /// The queue's figures, of every workflow or only `workflow`.
    public func queueStats(
        workflow: String = "", timeout: Duration = .seconds(30), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_QueueStats {
        try await unary(
            Swapline_V1_TaskService.getQueueStats, Swapline_V1_GetQueueStatsRequest(workflow: workflow), timeout: timeout,
            metadata: metadata)
    }

    /// Long-polls for a task; the call's deadline allows for the server-side wait.
    public func fetchTask(
        _ request: Swapline_V1_FetchTaskRequest, metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_FetchTaskResponse {
        try await unary(
            Swapline_V1_ConsumerService.fetchTask, request,
            timeout: .milliseconds(Int64(request.waitMs)) + .seconds(10), metadata: metadata)
    }

    public func updateStatus(
        _ request: Swapline_V1_UpdateStatusRequest, timeout: Duration = .seconds(30), metadata: Metadata = Metadata()
    ) async throws(SwaplineClientError) -> Swapline_V1_Task {
        try await unary(Swapline_V1_ConsumerService.updateStatus, request, timeout: timeout, metadata: metadata)
    }

    private func unary<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: RPCMethod<Request, Response>, _ request: Request, timeout: Duration, metadata: Metadata
    ) async throws(SwaplineClientError) -> Response {
        var responses = call(method, request, timeout: timeout, metadata: metadata).makeAsyncIterator()
        let response: Response?
        do {
            response = try await responses.next()
            guard response != nil, try await responses.next() == nil else {
                throw SwaplineClientError(code: .internal, message: "a unary call must answer exactly one message")
            }
        } catch let error as SwaplineClientError {
            throw error
        } catch {
            throw SwaplineClientError(code: .unknown, message: "\(error)")
        }
        return response!
    }

    private func call<Request: ProtoMessage, Response: ProtoMessage>(
        _ method: RPCMethod<Request, Response>, _ request: Request, timeout: Duration?, metadata callMetadata: Metadata
    ) -> GRPCResponseStream<Response> {
        var headers = HTTPHeaders([("content-type", "application/grpc"), ("te", "trailers")])
        for entry in metadata where Metadata.isApplicationMetadata(entry.name) { headers.add(name: entry.name, value: entry.value) }
        for entry in callMetadata where Metadata.isApplicationMetadata(entry.name) { headers.add(name: entry.name, value: entry.value) }
        var transportTimeout: Duration?
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            headers.add(name: "grpc-timeout", value: GRPCTimeout(nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000).headerValue)
            // The server ends the call at its deadline with a proper status; curl's timer is
            // only the backstop for a server that never answers.
            transportTimeout = timeout + .seconds(2)
        }
        var body = ByteBufferAllocator().buffer(capacity: 256)
        GRPCMessageFramer.frame(into: &body) { request.encode(into: &$0) }
        let httpRequest = HTTPRequest(
            method: .post, url: serverURL + method.path, headers: headers, body: Array(buffer: body),
            version: .http2PriorKnowledge, connectTimeout: .seconds(5), totalTimeout: transportTimeout,
            maxResponseBytes: .max, caFile: caFile, connectTo: connectTo)
        return GRPCResponseStream(parts: http.stream(httpRequest), maxMessageSize: maxMessageSize)
    }
}

/// The response messages of one call, as an `AsyncSequence`. Iteration throws
/// `SwaplineClientError` when the call ends with a non-OK status (after the messages that came
/// before it). Stopping early cancels the call.
public struct GRPCResponseStream<Message: ProtoMessage>: AsyncSequence, Sendable {
    private let parts: AsyncThrowingStream<HTTPResponsePart, any Error>
    private let maxMessageSize: Int

    init(parts: AsyncThrowingStream<HTTPResponsePart, any Error>, maxMessageSize: Int) {
        self.parts = parts
        self.maxMessageSize = maxMessageSize
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(parts: parts.makeAsyncIterator(), reader: GRPCCallReader(maxMessageSize: maxMessageSize))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var parts: AsyncThrowingStream<HTTPResponsePart, any Error>.AsyncIterator
        var reader: GRPCCallReader
        var decoded: [ByteBuffer] = []
        var ended = false

        public mutating func next() async throws -> Message? {
            while decoded.isEmpty {
                if ended { return nil }
                let part: HTTPResponsePart?
                do {
                    part = try await parts.next()
                } catch let error as HTTPClientError {
                    throw error.clientError
                } catch {
                    throw HTTPClientError.cancelled.clientError
                }
                guard let part else {
                    ended = true
                    try reader.finish()
                    return nil
                }
                decoded = try reader.receive(part)
            }
            let bytes = decoded.removeFirst()
            do {
                return try Message(protobufBytes: bytes)
            } catch {
                throw SwaplineClientError(code: .internal, message: "undecodable response: \(error.message)")
            }
        }
    }
}
