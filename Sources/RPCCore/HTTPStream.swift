import NIOCore

/// A header field as it crossed the wire: lower-case name, raw value.
public struct HeaderField: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// The outbound half of one HTTP request/response exchange, implemented by a transport
/// (an HTTP/2 stream, later an HTTP/1.1 connection).
///
/// Every method is called on `eventLoop`. Writes are queued: the transport sends them as flow
/// control allows and never blocks. Order: one `writeHead`, then any number of `writeBody`,
/// then one `writeEnd` (unless the head ended the response).
public protocol HTTPStreamWriter: AnyObject {
    var eventLoop: any EventLoop { get }
    /// Body bytes queued and not yet handed to the connection.
    var queuedBodyBytes: Int { get }
    /// Sends the response head; `endStream` makes it the whole response (e.g. Trailers-Only).
    func writeHead(status: Int, headers: [HeaderField], endStream: Bool)
    /// Queues body bytes after the head.
    func writeBody(_ bytes: ByteBuffer)
    /// Ends the response once the queued body is sent, followed by `trailers` when not empty.
    func writeEnd(trailers: [HeaderField])
    /// Abandons the exchange (HTTP/2: RST_STREAM with INTERNAL_ERROR).
    func reset()
    /// The client's IP address, as the connection's peer: who a call is when it carries no
    /// token (per-client rate limits). `nil` when the transport does not know it.
    var peerAddress: String? { get }
    /// The connection the exchange belongs to; `nil` when it is not one that can carry several
    /// exchanges at once (HTTP/1.1, in-process and test writers).
    var connectionID: ConnectionID? { get }
}

extension HTTPStreamWriter {
    public var connectionID: ConnectionID? { nil }
}

/// The inbound half: what a transport reports about one request. Called on the event loop.
public protocol HTTPStreamHandler: AnyObject {
    /// The request head (pseudo-headers included); `endStream` when the request has no body.
    func receiveHead(_ fields: [HeaderField], endStream: Bool)
    func receiveBody(_ bytes: ByteBuffer)
    /// The peer finished its request.
    func receiveEnd()
    /// The transport has sent everything queued so far (outbound backpressure released).
    func bodyDrained()
    /// The exchange is over. `cleanly` when the whole response was handed to the connection;
    /// `false` when the peer reset the stream or the connection closed first.
    func streamClosed(cleanly: Bool)
    /// The transport gave up on the rest of the request (`reason` says why, e.g. no body bytes
    /// for its body timeout). The handler may still end its response at once; the transport
    /// then resets the stream, whether or not it did.
    func requestAbandoned(reason: String)
}

extension HTTPStreamHandler {
    /// Handlers with nothing better to say leave the answer to the transport: a reset.
    public func requestAbandoned(reason: String) {}
}

/// Creates the handler for each new request on a connection.
public protocol HTTPStreamHandlerFactory: Sendable {
    func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler
}
