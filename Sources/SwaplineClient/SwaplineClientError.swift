public import RPCCore

/// A call that did not end with OK: the gRPC status code and message the server sent, or the
/// code the client derived from a transport failure (UNAVAILABLE when the server could not be
/// reached, DEADLINE_EXCEEDED when the call's timeout ran out, CANCELLED when the calling task
/// was cancelled).
public struct SwaplineClientError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: GRPCStatus.Code
    public var message: String

    public init(code: GRPCStatus.Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}
