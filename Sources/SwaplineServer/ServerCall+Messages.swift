import NIOCore
import RPCCore
import SwaplineCore
import SwaplineMessages

extension ServerCall {
    /// Sends one response message of a streaming call.
    func send(message: some ProtoMessage) {
        send(message)
    }

    /// Answers a unary call with `message` and OK.
    func reply(_ message: some ProtoMessage, trailers: Metadata = Metadata(), onComplete: (@Sendable (Bool) -> Void)? = nil) {
        respond(message, trailers: trailers, onComplete: onComplete)
    }

    /// Ends the call with the status that matches a scheduler refusal, and its retry hint as
    /// the `retry-after` trailer (whole seconds, as HTTP's Retry-After).
    func fail(_ error: TaskError) {
        var trailers = Metadata()
        if let seconds = error.retryAfterSeconds { trailers.append("retry-after", String(seconds)) }
        finish(GRPCStatus(error), trailers: trailers)
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
