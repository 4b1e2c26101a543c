import NIOCore
import RPCCore
import Synchronization
import SwaplineMessages

/// grpc.testing.TestService, served with `--enable-interop-testing` so gRPC's official
/// interop cases can be run against this transport. `UnimplementedCall` is deliberately not
/// registered: the `unimplemented_method` case expects UNIMPLEMENTED for it.
struct InteropTestService {
    static let name = Grpc_Testing_TestService.name
    static let echoInitialKey = "x-grpc-test-echo-initial"
    static let echoTrailingKey = "x-grpc-test-echo-trailing-bin"

    func register(in router: inout RPCRouter) {
        router.register(Grpc_Testing_TestService.emptyCall) { _, call in
            Self.echoInitialMetadata(call)
            call.reply(Grpc_Testing_Empty(), trailers: Self.echoedTrailers(call))
        }
        router.register(Grpc_Testing_TestService.unaryCall) { request, call in
            Self.echoInitialMetadata(call)
            if request.expectCompressed == true {
                return call.finish(GRPCStatus(.invalidArgument, "expected a compressed request; this server does not compress"))
            }
            if let status = request.responseStatus, status.code != 0 {
                return call.finish(GRPCStatus(.init(rawValue: Int(status.code)), status.message), trailers: Self.echoedTrailers(call))
            }
            let response = Grpc_Testing_SimpleResponse(payload: Self.payload(size: request.responseSize))
            call.reply(response, trailers: Self.echoedTrailers(call))
        }
        router.register(Grpc_Testing_TestService.streamingOutputCall) { request, call in
            Self.echoInitialMetadata(call)
            Self.stream(request.responseParameters, on: call) {
                Self.finish(call, status: request.responseStatus)
            }
        }
        router.register(Grpc_Testing_TestService.fullDuplexCall, handler: .requestStream { call in
            Self.echoInitialMetadata(call)
            // Requests are answered in order: each one's responses go out before the next one's.
            let backlog = Mutex<(busy: Bool, queued: [Grpc_Testing_StreamingOutputCallRequest], ended: Bool)>((false, [], false))
            @Sendable func pump() {
                let next: Grpc_Testing_StreamingOutputCallRequest?? = backlog.withLock { state in
                    if state.busy { return .none }
                    if !state.queued.isEmpty {
                        state.busy = true
                        return .some(state.queued.removeFirst())
                    }
                    return state.ended ? .some(nil) : .none
                }
                switch next {
                case .none: return
                case .some(nil): Self.finish(call, status: nil)
                case .some(let request?):
                    if let status = request.responseStatus, status.code != 0 {
                        return Self.finish(call, status: status)
                    }
                    Self.stream(request.responseParameters, on: call) {
                        backlog.withLock { $0.busy = false }
                        pump()
                    }
                }
            }
            return RequestObserver(
                onMessage: { bytes in
                    do {
                        let request = try Grpc_Testing_StreamingOutputCallRequest(protobufBytes: bytes)
                        backlog.withLock { $0.queued.append(request) }
                        pump()
                    } catch {
                        call.finish(GRPCStatus(.invalidArgument, "cannot decode the request: \(error)"))
                    }
                },
                onEnd: {
                    backlog.withLock { $0.ended = true }
                    pump()
                })
        })
    }

    /// Sends one response per parameter, each after its `interval_us`, then runs `done`.
    private static func stream(_ parameters: [Grpc_Testing_ResponseParameters], on call: ServerCall, done: @escaping @Sendable () -> Void) {
        guard let first = parameters.first else { return done() }
        let rest = Array(parameters.dropFirst())
        let sendFirst: @Sendable () -> Void = {
            call.send(message: Grpc_Testing_StreamingOutputCallResponse(payload: payload(size: first.size)))
            stream(rest, on: call, done: done)
        }
        if first.intervalUs > 0 {
            call.eventLoop.scheduleTask(in: .microseconds(Int64(first.intervalUs)), sendFirst)
        } else {
            sendFirst()
        }
    }

    private static func finish(_ call: ServerCall, status: Grpc_Testing_EchoStatus?) {
        let grpcStatus = status.map { GRPCStatus(.init(rawValue: Int($0.code)), $0.message) } ?? .ok
        call.finish(grpcStatus, trailers: echoedTrailers(call))
    }

    /// The largest payload sent: what a stock client accepts by default. The interop cases ask
    /// for a few hundred KiB; a request for up to 2 GiB (Int32.max) gets this much instead of
    /// making the server allocate it.
    static let maxPayloadBytes: Int32 = 4 * 1024 * 1024

    private static func payload(size: Int32) -> Grpc_Testing_Payload {
        Grpc_Testing_Payload(body: [UInt8](repeating: 0, count: Int(min(max(size, 0), maxPayloadBytes))))
    }

    private static func echoInitialMetadata(_ call: ServerCall) {
        if let value = call.requestMetadata[echoInitialKey] {
            call.sendInitialMetadata([echoInitialKey: value])
        }
    }

    private static func echoedTrailers(_ call: ServerCall) -> Metadata {
        guard let value = call.requestMetadata[echoTrailingKey] else { return Metadata() }
        return [echoTrailingKey: value]
    }
}
