import NIOCore
import RPCCore
import SwaplineCore
import SwaplineMessages

extension ServerCall {
    /// Sends one response message of a streaming call.
    func send(message: some ProtoMessage) {
        send(Self.encode(message))
    }

    /// Answers a unary call with `message` and OK.
    func reply(_ message: some ProtoMessage, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        respond(Self.encode(message), trailers: trailers, onComplete: onComplete)
    }

    /// Ends the call with the status that matches a scheduler refusal.
    func fail(_ error: TaskError) {
        finish(GRPCStatus(error))
    }

    private static func encode(_ message: some ProtoMessage) -> GRPCFramedMessage {
        GRPCFramedMessage { message.encode(into: &$0) }
    }
}

extension GRPCStatus {
    init(_ error: TaskError) {
        let code: Code
        switch error.kind {
        case .invalidArgument: code = .invalidArgument
        case .notFound: code = .notFound
        case .failedPrecondition: code = .failedPrecondition
        case .aborted: code = .aborted
        case .unavailable: code = .unavailable
        case .resourceExhausted: code = .resourceExhausted
        }
        self.init(code, error.message)
    }
}

extension RPCRouter {
    /// Registers a method that takes one request message, decoded before `body` runs; a
    /// request that does not decode ends the call with `INVALID_ARGUMENT`.
    mutating func register<Request: ProtoMessage>(
        service: String, method: String, request: Request.Type,
        _ body: @escaping @Sendable (Request, ServerCall) -> Void
    ) {
        register(service: service, method: method, handler: .singleRequest { bytes, call in
            do {
                body(try Request(protobufBytes: bytes), call)
            } catch {
                call.finish(GRPCStatus(.invalidArgument, "cannot decode the request: \(error)"))
            }
        })
    }
}
