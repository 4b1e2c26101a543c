import NIOCore

/// Serves gRPC and plain HTTP requests on the same connections: each request goes to a
/// `GRPCServerStream` when its `content-type` is gRPC's or its path names a gRPC service of the
/// router (so that a non-gRPC client calling a gRPC method still learns, with HTTP 415, that
/// it must speak gRPC), and to the `http` factory's handler otherwise.
public struct ContentTypeRouter: HTTPStreamHandlerFactory {
    public let grpc: GRPCStreamHandlerFactory
    public let http: any HTTPStreamHandlerFactory

    public init(grpc: GRPCStreamHandlerFactory, http: any HTTPStreamHandlerFactory) {
        self.grpc = grpc
        self.http = http
    }

    public func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler {
        ContentTypeDispatcher(router: self, writer: writer)
    }

    func isGRPC(contentType: String, path: String) -> Bool {
        if GRPCServerStream.isGRPCContentType(contentType) { return true }
        let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        return parts.count == 3 && parts[0].isEmpty && grpc.router.serviceNames.contains(String(parts[1]))
    }
}

/// Waits for a request's head, then hands the whole exchange to the handler it chose.
///
/// It lets go of the writer once the head is routed and of the handler once the exchange is
/// over: a transport's stream keeps its handler, and the handler its writer (the stream), so
/// without this each exchange would be a reference cycle that is never freed.
final class ContentTypeDispatcher: HTTPStreamHandler {
    private let router: ContentTypeRouter
    private var writer: (any HTTPStreamWriter)?
    private var target: (any HTTPStreamHandler)?

    init(router: ContentTypeRouter, writer: any HTTPStreamWriter) {
        self.router = router
        self.writer = writer
    }

    func receiveHead(_ fields: [HeaderField], endStream: Bool) {
        guard let writer else { return }
        self.writer = nil
        var contentType = "", path = ""
        for field in fields {
            switch field.name {
            case "content-type": contentType = field.value
            case ":path": path = field.value
            default: break
            }
        }
        let factory: any HTTPStreamHandlerFactory =
            router.isGRPC(contentType: contentType, path: path) ? router.grpc : router.http
        let target = factory.makeHandler(writer: writer)
        self.target = target
        target.receiveHead(fields, endStream: endStream)
    }

    func receiveBody(_ bytes: ByteBuffer) { target?.receiveBody(bytes) }
    func receiveEnd() { target?.receiveEnd() }
    func bodyDrained() { target?.bodyDrained() }
    func requestAbandoned(reason: String) { target?.requestAbandoned(reason: reason) }

    func streamClosed(cleanly: Bool) {
        let target = self.target
        self.target = nil
        writer = nil
        target?.streamClosed(cleanly: cleanly)
    }
}
