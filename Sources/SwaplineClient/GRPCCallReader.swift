import CurlHTTP
import NIOCore
import RPCCore
import SwaplineMessages

/// Turns the parts of one HTTP/2 response into gRPC messages and a final status, following the
/// gRPC-over-HTTP/2 spec: messages in DATA, `grpc-status`/`grpc-message` in the trailers, or in
/// the only HEADERS frame of a Trailers-Only response.
struct GRPCCallReader {
    private var deframer: GRPCMessageDeframer
    private(set) var status: GRPCStatus?

    init(maxMessageSize: Int) {
        deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    }

    /// Takes one response part; returns the complete messages it finished.
    mutating func receive(_ part: HTTPResponsePart) throws(SwaplineClientError) -> [ByteBuffer] {
        switch part {
        case .head(let head):
            if let trailersOnly = Self.status(in: head.headers) {
                status = trailersOnly
            } else if head.status != 200 {
                status = Self.status(forHTTPStatus: head.status)
            } else if !(head.headers["content-type"] ?? "").hasPrefix("application/grpc") {
                status = GRPCStatus(.internal, "response content-type is not application/grpc")
            }
            return []
        case .body(let bytes):
            guard status == nil else { return [] }
            deframer.append(ByteBuffer(bytes: bytes))
            var messages: [ByteBuffer] = []
            do {
                while let message = try deframer.next() { messages.append(message) }
            } catch {
                throw SwaplineClientError(code: error.status.code, message: error.status.message)
            }
            return messages
        case .trailers(let trailers):
            if status == nil { status = Self.status(in: trailers) }
            return []
        }
    }

    /// The call's outcome once the response has ended: returns on OK, throws otherwise.
    func finish() throws(SwaplineClientError) {
        guard let status else {
            throw SwaplineClientError(code: .internal, message: "the response ended without grpc-status")
        }
        guard status.code == .ok else { throw SwaplineClientError(code: status.code, message: status.message) }
        do {
            try deframer.finish()
        } catch {
            throw SwaplineClientError(code: .internal, message: error.status.message)
        }
    }

    private static func status(in headers: HTTPHeaders) -> GRPCStatus? {
        guard let value = headers["grpc-status"] else { return nil }
        let message = GRPCMessageEncoding.decode(headers["grpc-message"] ?? "")
        guard let code = Int(value) else { return GRPCStatus(.unknown, "malformed grpc-status \(value)") }
        return GRPCStatus(GRPCStatus.Code(rawValue: code), message)
    }

    /// The mapping gRPC's spec gives for responses that are not gRPC at all (a proxy's error page).
    private static func status(forHTTPStatus status: Int) -> GRPCStatus {
        let code: GRPCStatus.Code =
            switch status {
            case 400: .internal
            case 401: .unauthenticated
            case 403: .permissionDenied
            case 404: .unimplemented
            case 429, 502, 503, 504: .unavailable
            default: .unknown
            }
        return GRPCStatus(code, "HTTP status \(status)")
    }
}

extension HTTPClientError {
    var clientError: SwaplineClientError {
        switch self {
        case .couldNotConnect(let detail): SwaplineClientError(code: .unavailable, message: detail)
        case .timedOut(let detail): SwaplineClientError(code: .deadlineExceeded, message: detail)
        case .responseTooLarge: SwaplineClientError(code: .resourceExhausted, message: description)
        case .cancelled: SwaplineClientError(code: .cancelled, message: "the call was cancelled")
        case .transport(let detail): SwaplineClientError(code: .unavailable, message: detail)
        case .clientShutDown, .refusedAddress: SwaplineClientError(code: .unavailable, message: description)
        }
    }
}
