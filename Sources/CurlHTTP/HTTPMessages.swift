/// Header fields in arrival order. Names are stored lower-cased (HTTP/2 sends them that way and
/// HTTP/1.1 names are case-insensitive), so lookups compare exactly.
public struct HTTPHeaders: Sendable, Sequence {
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public private(set) var fields: [Field] = []

    public init(_ pairs: [(String, String)] = []) {
        for (name, value) in pairs { add(name: name, value: value) }
    }

    public mutating func add(name: String, value: String) {
        fields.append(Field(name: name.lowercased(), value: value))
    }

    /// The first value of `name` (any case).
    public subscript(name: String) -> String? {
        let wanted = name.lowercased()
        return fields.first { $0.name == wanted }?.value
    }

    public var isEmpty: Bool { fields.isEmpty }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
}

public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable {
        case get = "GET", post = "POST", put = "PUT", delete = "DELETE"
    }

    public enum Version: Sendable {
        /// HTTP/2 when a TLS peer offers it through ALPN, HTTP/1.1 otherwise.
        case negotiated
        /// HTTP/2 cleartext without an upgrade dance, as gRPC servers expect; over `https`,
        /// HTTP/2 negotiated through ALPN.
        case http2PriorKnowledge
    }

    public var method: Method
    public var url: String
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var version: Version
    public var connectTimeout: Duration
    /// Limit on the whole exchange; `nil` for none (long-lived streams).
    public var totalTimeout: Duration?
    /// Largest response body accepted; bigger ones fail with `responseTooLarge` as soon as the
    /// limit is crossed, whether or not the peer announced a Content-Length.
    public var maxResponseBytes: Int
    /// `https` peers are always verified (certificate chain and host name). This PEM file of
    /// certificate authorities is the only trust they are verified against; `nil`: the
    /// system's trust store.
    public var caFile: String?
    /// Connect to this `HOST:PORT` instead of the URL's; the URL's host is still the name the
    /// peer's certificate must carry (libcurl's `CURLOPT_CONNECT_TO`).
    public var connectTo: String?
    /// The only addresses the request may connect to; nil: wherever curl resolves the host to.
    public var pinning: AddressPinning?
    /// The proxy the request goes through.
    public var proxy: ProxySetting = .fromEnvironment
    /// Gives up on a peer that sends slower than this (CURLOPT_LOW_SPEED_LIMIT/TIME).
    public var lowSpeedLimit: LowSpeedLimit?
    /// A PUT body read from this part of a file while it is sent (`body` is then ignored), so
    /// a large upload never sits in memory.
    public var bodyFile: FileSlice?
    /// A `multipart/form-data` POST body of this one file part (`body` and `bodyFile` are then
    /// ignored); curl reads the file while it sends it (libcurl's MIME API).
    public var multipartFile: MultipartFile?
    /// Signs the request with AWS Signature Version 4 (libcurl's CURLOPT_AWS_SIGV4). The
    /// payload hash is whatever the request's `x-amz-content-sha256` header says, so a caller
    /// that wants the signature to cover the body sets that header to the body's SHA-256.
    public var awsSigV4: AWSSigV4?

    public init(
        method: Method = .get, url: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [],
        version: Version = .negotiated, connectTimeout: Duration = .seconds(10), totalTimeout: Duration? = .seconds(120),
        maxResponseBytes: Int = 64 * 1024 * 1024, caFile: String? = nil, connectTo: String? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.version = version
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.maxResponseBytes = maxResponseBytes
        self.caFile = caFile
        self.connectTo = connectTo
    }
}

/// Pins a request to addresses checked beforehand (docs/security.md): curl is told that
/// `host:port` resolves to exactly `addresses` (CURLOPT_RESOLVE, kept in a DNS cache of this
/// request alone, so it neither leaks into nor takes from other transfers), and a socket to
/// any other address is refused before it connects (CURLOPT_OPENSOCKETFUNCTION), whatever curl
/// itself parsed or resolved. Redirects are not followed by curl in any case. Pinning and a
/// proxy exclude each other: through a proxy, the proxy connects.
public struct AddressPinning: Sendable, Equatable {
    /// The URL's host: a name, or a numeric address (then no resolve entry is needed).
    public var host: String
    public var port: Int
    /// Numeric addresses as `inet_pton` reads them, e.g. "93.184.216.34", "2606:2800::1".
    public var addresses: [String]

    public init(host: String, port: Int, addresses: [String]) {
        self.host = host
        self.port = port
        self.addresses = addresses
    }
}

/// Which proxy carries a request.
public enum ProxySetting: Sendable, Equatable {
    /// libcurl's default: `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` from the
    /// environment.
    case fromEnvironment
    /// A direct connection, whatever the environment says.
    case none
    /// This proxy URL.
    case url(String)
}

/// `length` bytes of the file at `path`, from byte `offset` on.
public struct FileSlice: Sendable, Equatable {
    public var path: String
    public var offset: Int64
    public var length: Int64

    public init(path: String, offset: Int64 = 0, length: Int64) {
        self.path = path
        self.offset = offset
        self.length = length
    }
}

/// The one file part of a `multipart/form-data` body: `Content-Disposition: form-data;
/// name="{fieldName}"; filename="{fileName}"` and `Content-Type: {contentType}`.
public struct MultipartFile: Sendable, Equatable {
    public var fieldName: String
    public var fileName: String
    public var contentType: String
    public var path: String

    public init(fieldName: String, fileName: String, contentType: String, path: String) {
        self.fieldName = fieldName
        self.fileName = fileName
        self.contentType = contentType
        self.path = path
    }
}

/// What libcurl needs to sign a request with AWS SigV4.
public struct AWSSigV4: Sendable, Equatable {
    /// CURLOPT_AWS_SIGV4's `provider1:provider2:region:service`, e.g. "aws:amz:us-east-1:s3".
    public var parameters: String
    public var accessKeyID: String
    public var secretAccessKey: String

    public init(parameters: String, accessKeyID: String, secretAccessKey: String) {
        self.parameters = parameters
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }
}

/// A transfer slower than `bytesPerSecond` for `duration` fails with `timedOut`.
public struct LowSpeedLimit: Sendable, Equatable {
    public var bytesPerSecond: Int
    public var duration: Duration

    public init(bytesPerSecond: Int, duration: Duration) {
        self.bytesPerSecond = bytesPerSecond
        self.duration = duration
    }
}

public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
}

/// What a streamed response delivers, in order: one head, any number of body chunks, then
/// trailers when the peer sent some (HTTP/2, e.g. gRPC's `grpc-status`).
public enum HTTPResponsePart: Sendable {
    case head(HTTPResponseHead)
    case body([UInt8])
    case trailers(HTTPHeaders)
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var trailers: HTTPHeaders
}

public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Name resolution, the TCP connect or the TLS handshake (including verifying the peer's
    /// certificate) failed: the request never reached the peer.
    case couldNotConnect(String)
    /// The connect or total timeout ran out.
    case timedOut(String)
    case responseTooLarge(limit: Int)
    case cancelled
    /// Anything else on the wire: resets, protocol errors, a malformed URL.
    case transport(String)
    /// The client was shut down before the exchange finished.
    case clientShutDown
    /// Address pinning refused every connection curl tried: an address outside the pinned set.
    case refusedAddress(String)

    public var description: String {
        switch self {
        case .couldNotConnect(let detail): "could not connect: \(detail)"
        case .timedOut(let detail): "timed out: \(detail)"
        case .responseTooLarge(let limit): "response larger than \(limit) bytes"
        case .cancelled: "cancelled"
        case .transport(let detail): "transport error: \(detail)"
        case .clientShutDown: "HTTP client shut down"
        case .refusedAddress(let detail): "connection refused by address pinning: \(detail)"
        }
    }
}
