import Logging
import NIOCore
import NIOHTTP1
import RPCCore

/// The first handler of every accepted connection: reads just enough to tell the HTTP/2
/// client preface from an HTTP/1.1 request, installs that protocol's handlers behind itself,
/// hands them the bytes read so far and leaves the pipeline.
///
/// One port thus serves HTTP/2 with prior knowledge (gRPC and REST) and HTTP/1.1 (REST). The
/// choice is made at the first byte that differs from the preface, so an HTTP/1.1 request is
/// never held back waiting for 24 bytes.
final class ProtocolDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private enum WireProtocol {
        case http2, http1
    }

    private let configuration: H2Configuration
    private let factory: any HTTPStreamHandlerFactory
    private let logger: Logger
    private var received: ByteBuffer?
    private var idleTimer: Scheduled<Void>?

    init(configuration: H2Configuration, factory: any HTTPStreamHandlerFactory, logger: Logger) {
        self.configuration = configuration
        self.factory = factory
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A connection that never says anything is closed like an idle one.
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.idleTimeout) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        guard let received, let chosen = Self.detect(received) else { return }
        self.received = nil
        do {
            try install(chosen, context: context)
        } catch {
            logger.debug("cannot set up the connection: \(error)")
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(received))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is H2GracefulShutdownEvent {
            // No request has started on this connection: nothing to finish.
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// `nil` while the bytes so far are a prefix of the HTTP/2 preface.
    private static func detect(_ bytes: ByteBuffer) -> WireProtocol? {
        let prefixLength = min(bytes.readableBytes, http2Preface.count)
        let matches = bytes.readableBytesView.prefix(prefixLength).elementsEqual(http2Preface.prefix(prefixLength))
        if !matches { return .http1 }
        return prefixLength == http2Preface.count ? .http2 : nil
    }

    private func install(_ chosen: WireProtocol, context: ChannelHandlerContext) throws {
        let pipeline = context.pipeline.syncOperations
        switch chosen {
        case .http2:
            try pipeline.addHandler(
                H2ConnectionHandler(
                    configuration: configuration, factory: factory, eventLoop: context.eventLoop, logger: logger))
        case .http1:
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
            try pipeline.addHandler(
                HTTP1ConnectionHandler(idleTimeout: configuration.idleTimeout, factory: factory, logger: logger))
        }
    }
}
