public import NIOCore

/// How a method takes its requests off the wire. Every method of this server answers with a
/// stream of zero or more messages through its `ServerCall`; unary methods send exactly one.
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

/// A method's handler as an in-process caller reaches it: the request as a value, never
/// serialized.
struct TypedHandler<Request: RPCMessage>: Sendable {
    let body: @Sendable (Request, ServerCall) -> Void
}

/// One registered method: its descriptor and its handler, as the wire needs it and (for
/// methods registered with their types) as an in-process caller needs it.
public struct RoutedMethod: Sendable {
    public let descriptor: MethodDescriptor
    public let handler: RPCHandler
    /// The method's place in `RPCRouter.registeredMethods`: what an `RPCCallObserver` keeps
    /// its per-method state under, so no call looks its method up by name.
    public let index: Int
    /// A `TypedHandler<Request>`; `nil` for methods registered with a raw `RPCHandler`.
    let typed: (any Sendable)?
}

/// Maps `/package.Service/Method` paths to handlers, and holds the interceptors every call
/// of every surface passes through before its handler.
public struct RPCRouter: Sendable {
    private var methods: [String: RoutedMethod] = [:]
    private var services: Set<String> = []
    /// Every registered method, in registration order (`RoutedMethod.index`).
    public private(set) var registeredMethods: [MethodDescriptor] = []
    /// Run in order for every call, gRPC or in process (`ServerInterceptor`).
    public var interceptors: [any ServerInterceptor] = []
    /// Hears how every gRPC call ended (metrics); set once every method is registered.
    public var callObserver: (any RPCCallObserver)?

    public init() {}

    /// Registers a method that takes its requests as bytes.
    public mutating func register(_ descriptor: MethodDescriptor, handler: RPCHandler) {
        add(RoutedMethod(descriptor: descriptor, handler: handler, index: registeredMethods.count, typed: nil))
    }

    public mutating func register(service: String, method: String, handler: RPCHandler) {
        register(MethodDescriptor(service: service, method: method), handler: handler)
    }

    /// Registers a method that takes one request message. The gRPC surface decodes it before
    /// `body` runs (a request that does not decode ends the call with `INVALID_ARGUMENT`); an
    /// in-process caller hands it over as it is.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ body: @escaping @Sendable (Request, ServerCall) -> Void
    ) {
        let wire = RPCHandler.singleRequest { bytes, call in
            let request: Request
            do {
                request = try Request(serializedBytes: bytes)
            } catch {
                return call.finish(GRPCStatus(.invalidArgument, "cannot decode the request: \(error)"))
            }
            body(request, call)
        }
        add(RoutedMethod(descriptor: method.descriptor, handler: wire, index: registeredMethods.count, typed: TypedHandler(body: body)))
    }

    private mutating func add(_ method: RoutedMethod) {
        methods[method.descriptor.path] = method
        registeredMethods.append(method.descriptor)
        services.insert(method.descriptor.service)
    }

    public var serviceNames: Set<String> { services }

    /// The method at `path`, or the `UNIMPLEMENTED` status that tells the caller whether the
    /// service or only the method is unknown.
    public func route(_ path: String) -> Result<RoutedMethod, GRPCStatus> {
        if let method = methods[path] { return .success(method) }
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

/// Hears the end of every gRPC call of a router: its method, status code and duration.
/// Called once per call on the call's event loop, so it must be quick and must not block.
public protocol RPCCallObserver: Sendable {
    /// `methodIndex` is `RoutedMethod.index`, `nil` for a call that named no registered
    /// method; `startedAt` is when its request head arrived.
    func callEnded(methodIndex: Int?, code: GRPCStatus.Code, startedAt: NIODeadline)
}
