import NIOCore

/// How a method takes its requests. Every method of this server answers with a stream of
/// zero or more messages through its `ServerCall`; unary methods send exactly one.
public enum RPCHandler: Sendable {
    /// Exactly one request message (unary and server-streaming RPCs). The transport checks
    /// the count: zero or two messages are answered `UNIMPLEMENTED`, as the gRPC spec asks.
    case singleRequest(@Sendable (ByteBuffer, ServerCall) -> Void)
    /// Request messages delivered as they arrive (client- and bidirectional-streaming RPCs).
    case requestStream(@Sendable (ServerCall) -> RequestObserver)
}

/// Receives the request messages of a streaming call, on the call's event loop.
public struct RequestObserver: Sendable {
    public var onMessage: @Sendable (ByteBuffer) -> Void
    public var onEnd: @Sendable () -> Void

    public init(onMessage: @escaping @Sendable (ByteBuffer) -> Void, onEnd: @escaping @Sendable () -> Void) {
        self.onMessage = onMessage
        self.onEnd = onEnd
    }
}

/// Maps `/package.Service/Method` paths to handlers.
public struct RPCRouter: Sendable {
    private var methods: [String: RPCHandler] = [:]
    private var services: Set<String> = []

    public init() {}

    public mutating func register(service: String, method: String, handler: RPCHandler) {
        methods["/\(service)/\(method)"] = handler
        services.insert(service)
    }

    public var serviceNames: Set<String> { services }

    /// The handler for `path`, or the `UNIMPLEMENTED` status that tells the caller whether the
    /// service or only the method is unknown.
    public func route(_ path: String) -> Result<RPCHandler, GRPCStatus> {
        if let handler = methods[path] { return .success(handler) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            return .failure(GRPCStatus(.unimplemented, "malformed method path '\(path)'"))
        }
        let service = String(parts[1])
        if services.contains(service) {
            return .failure(GRPCStatus(.unimplemented, "method '\(parts[2])' is not implemented by service '\(service)'"))
        }
        return .failure(GRPCStatus(.unimplemented, "unknown service '\(service)'"))
    }
}
