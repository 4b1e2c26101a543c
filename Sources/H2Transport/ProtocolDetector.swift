import Logging
import NIOCore
import NIOHTTP1
import NIOTLS
import RPCCore

/// The first handler of every accepted connection (behind the TLS handler on a TLS port):
/// reads just enough to tell the HTTP/2 client preface from an HTTP/1.1 request, installs that
/// protocol's handlers behind itself, hands them the bytes read so far and leaves the pipeline.
///
/// One port thus serves HTTP/2 with prior knowledge (gRPC and REST) and HTTP/1.1 (REST). The
/// choice is made at the first byte that differs from the preface, so an HTTP/1.1 request is
/// never held back waiting for 24 bytes.
///
/// Behind TLS, ALPN `h2` installs HTTP/2 at once (the server's SETTINGS go out before the
/// client's preface arrives). With `http/1.1` or no ALPN the first bytes decide as without TLS:
/// an HTTP/1.1 request is served as such either way, and a client that negotiated http/1.1 but
/// sends the HTTP/2 preface (HAProxy's health checks over TLS with `proto h2`) is served HTTP/2
/// rather than refused.
///
/// A connection that has not shown its protocol within `prefaceTimeout` (after the TLS
/// handshake, which has `tlsHandshakeTimeout`) is closed; the installed handler then keeps its
/// own timers (HTTP/2: SETTINGS within `prefaceTimeout` of its start).
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
    private var timer: Scheduled<Void>?
    private var awaitingTLSHandshake: Bool

    /// `behindTLS`: a TLS handler sits in front, and its handshake has not completed yet.
    init(configuration: H2Configuration, factory: any HTTPStreamHandlerFactory, logger: Logger, behindTLS: Bool = false) {
        self.configuration = configuration
        self.factory = factory
        self.logger = logger
        self.awaitingTLSHandshake = behindTLS
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A connection that never shows its protocol (slowloris) or never finishes its TLS
        // handshake is closed.
        armTimer(context: context, in: awaitingTLSHandshake ? configuration.tlsHandshakeTimeout : configuration.prefaceTimeout)
    }

    private func armTimer(context: ChannelHandlerContext, in delay: TimeAmount) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        guard let received, let chosen = Self.detect(received) else { return }
        choose(chosen, context: context)
    }

    /// Installs `chosen` behind this handler, hands it whatever was read so far and leaves.
    private func choose(_ chosen: WireProtocol, context: ChannelHandlerContext) {
        let received = self.received
        self.received = nil
        do {
            try install(chosen, context: context)
        } catch {
            logger.debug("cannot set up the connection: \(error)")
            context.close(promise: nil)
            return
        }
        if let received { context.fireChannelRead(wrapInboundOut(received)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is H2GracefulShutdownEvent {
            // No request has started on this connection: nothing to finish.
            context.close(promise: nil)
        } else if awaitingTLSHandshake, case .handshakeCompleted(let negotiated) = event as? TLSUserEvent {
            awaitingTLSHandshake = false
            if negotiated == "h2" {
                choose(.http2, context: context)
            } else {
                armTimer(context: context, in: configuration.prefaceTimeout)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A failed TLS handshake (a client that does not trust the certificate, a port scan)
        // or a reset before the first request: nothing was served, so debug only.
        logger.debug("connection closed before its first request: \(error)")
        context.close(promise: nil)
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
            try HTTP1ConnectionHandler.install(on: pipeline, configuration: configuration, factory: factory, logger: logger)
        }
    }
}
