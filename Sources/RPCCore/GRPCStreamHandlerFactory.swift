/// Answers every request on a connection as a gRPC call routed by `router`.
public struct GRPCStreamHandlerFactory: HTTPStreamHandlerFactory {
    public let router: RPCRouter
    public let configuration: GRPCServerConfiguration

    public init(router: RPCRouter, configuration: GRPCServerConfiguration) {
        self.router = router
        self.configuration = configuration
    }

    public func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler {
        GRPCServerStream(router: router, configuration: configuration, writer: writer)
    }
}
