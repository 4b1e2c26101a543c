/// Which surface a call came in through. Interceptors see both; a handler rarely needs to know.
public enum CallSurface: Sendable, Hashable {
    /// gRPC over HTTP/2.
    case grpc
    /// A REST route of the HTTP shim, calling the method in process.
    case rest
}

/// Who is calling, as an authenticating interceptor established it.
public struct CallerIdentity: Sendable, Hashable {
    /// A stable name of the credential (never the secret itself): what a task's owner is.
    public var subject: String
    /// The role the credential was given (`client`, `consumer`, `admin`).
    public var role: String

    public init(subject: String, role: String) {
        self.subject = subject
        self.role = role
    }
}

/// What every interceptor and handler knows about a call before its first message: the
/// method, the request metadata (HTTP headers for REST, minus pseudo and hop-by-hop headers),
/// the surface, and what interceptors added (the caller).
public struct ServerContext: Sendable {
    public let method: MethodDescriptor
    public var metadata: Metadata
    public let surface: CallSurface
    /// Set by the authenticating interceptor; `nil` when nobody authenticated the call
    /// (authentication is off, or the method is open).
    public var caller: CallerIdentity?
    /// The HTTP/2 connection the call arrived on (also for REST over HTTP/2); `nil` for
    /// HTTP/1.1, which carries one call at a time.
    public let connection: ConnectionID?
    /// The client's IP address (`HTTPStreamWriter.peerAddress`), when the transport knows it.
    public let peerAddress: String?

    public init(
        method: MethodDescriptor, metadata: Metadata, surface: CallSurface, caller: CallerIdentity? = nil,
        connection: ConnectionID? = nil, peerAddress: String? = nil
    ) {
        self.method = method
        self.metadata = metadata
        self.surface = surface
        self.caller = caller
        self.connection = connection
        self.peerAddress = peerAddress
    }
}

/// Runs for every call of a router, whichever surface it came from, after the method is
/// routed and before its handler starts: authentication, and later metrics and rate limits.
///
/// It is synchronous and runs on the call's event loop, like the rest of the request path: it
/// may change the context (name the caller) or end the call with a status, which the caller
/// gets as it would get a handler's error (a Trailers-Only gRPC response once the request has
/// been read, or the REST shim's JSON error); the handler never runs. An interceptor that must wait for something would need the stream to hold the
/// request meanwhile; none does yet.
public protocol ServerInterceptor: Sendable {
    /// `nil` to let the call go on; otherwise the status that ends it.
    func intercept(_ context: inout ServerContext) -> GRPCStatus?
}

extension Array where Element == any ServerInterceptor {
    /// Runs each interceptor in order; the first refusal ends the call.
    func run(_ context: inout ServerContext) -> GRPCStatus? {
        for interceptor in self {
            if let refusal = interceptor.intercept(&context) { return refusal }
        }
        return nil
    }
}
