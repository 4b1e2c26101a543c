/// Names one method of a service: what registration, the client, the REST shim and the
/// OpenAPI document all refer to, so no path is spelled out twice.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// The fully qualified service, e.g. `swapline.v1.TaskService`.
    public let service: String
    /// The method's name within the service, e.g. `CreateTask`.
    public let method: String
    /// `/service/method`, the HTTP/2 `:path` of a call.
    public let path: String
    /// The server answers with a stream of messages (server or bidirectional streaming), so
    /// the server's maximum deadline for unary calls does not apply.
    public let streamsResponses: Bool

    public init(service: String, method: String, streamsResponses: Bool = false) {
        self.service = service
        self.method = method
        self.path = "/\(service)/\(method)"
        self.streamsResponses = streamsResponses
    }

    public var description: String { path }
}

/// A method with its request and response types: the one value per method that the server
/// registers its handler under, the typed client calls, and the REST shim calls in process.
public struct RPCMethod<Request: RPCMessage, Response: RPCMessage>: Sendable {
    public let descriptor: MethodDescriptor

    public init(service: String, method: String, streamsResponses: Bool = false) {
        self.descriptor = MethodDescriptor(service: service, method: method, streamsResponses: streamsResponses)
    }

    public var path: String { descriptor.path }
}
