import NIOCore
public import RPCCore

/// Writes a scrape of `registry` as an HTTP response: what `GET /metrics` answers on the
/// server's port (through the REST shim) and on the worker's `--metrics-port`.
public enum MetricsResponse {
    /// Scrapes off the event loop (collectors may wait for the store) and writes the answer on
    /// `writer`'s loop; `isOpen` is asked there first, so nothing is written to an exchange the
    /// client already left. A HEAD request gets the head alone.
    public static func write(
        _ registry: MetricsRegistry, to writer: any HTTPStreamWriter, withBody: Bool = true, isOpen: @escaping () -> Bool
    ) {
        let promise = writer.eventLoop.makePromise(of: [UInt8].self)
        promise.completeWithTask { await registry.scrape() }
        promise.futureResult.assumeIsolated().whenSuccess { bytes in
            guard isOpen() else { return }
            let headers = [
                HeaderField("content-type", MetricsRegistry.contentType), HeaderField("content-length", String(bytes.count)),
                HeaderField("cache-control", "no-store"),
            ]
            guard withBody else { return writer.writeHead(status: 200, headers: headers, endStream: true) }
            writer.writeHead(status: 200, headers: headers, endStream: false)
            writer.writeBody(ByteBuffer(bytes: bytes))
            writer.writeEnd(trailers: [])
        }
    }
}

/// Answers `GET /metrics` (and HEAD) with a scrape of `registry`, anything else 404 or 405:
/// the whole HTTP surface of a worker's metrics listener.
public struct MetricsEndpoint: HTTPStreamHandlerFactory {
    public let registry: MetricsRegistry

    public init(registry: MetricsRegistry) {
        self.registry = registry
    }

    public func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler {
        MetricsExchange(registry: registry, writer: writer)
    }
}

/// One request to the metrics listener; the request body, if any, is ignored.
final class MetricsExchange: HTTPStreamHandler {
    private let registry: MetricsRegistry
    private let writer: any HTTPStreamWriter
    private var method = ""
    private var path = ""
    private var answered = false
    private var isClosed = false

    init(registry: MetricsRegistry, writer: any HTTPStreamWriter) {
        self.registry = registry
        self.writer = writer
    }

    func receiveHead(_ fields: [HeaderField], endStream: Bool) {
        for field in fields {
            switch field.name {
            case ":method": method = field.value
            case ":path": path = String(field.value.prefix { $0 != "?" })
            default: break
            }
        }
        if endStream { receiveEnd() }
    }

    func receiveBody(_ bytes: ByteBuffer) {}

    func receiveEnd() {
        guard !answered else { return }
        answered = true
        guard path == "/metrics" else { return plain(404, "Not Found: this listener serves only /metrics\n") }
        guard method == "GET" || method == "HEAD" else {
            return plain(405, "Method Not Allowed: /metrics takes GET\n", extra: [HeaderField("allow", "GET, HEAD")])
        }
        MetricsResponse.write(registry, to: writer, withBody: method == "GET") { [self] in !isClosed }
    }

    func bodyDrained() {}

    func streamClosed(cleanly: Bool) {
        isClosed = true
    }

    private func plain(_ status: Int, _ text: String, extra: [HeaderField] = []) {
        let body = ByteBuffer(string: text)
        writer.writeHead(
            status: status,
            headers: [HeaderField("content-type", "text/plain; charset=utf-8"), HeaderField("content-length", String(body.readableBytes))]
                + extra,
            endStream: method == "HEAD")
        guard method != "HEAD" else { return }
        writer.writeBody(body)
        writer.writeEnd(trailers: [])
    }
}
