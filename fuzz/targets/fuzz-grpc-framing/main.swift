// libFuzzer target: gRPC message framing (GRPCMessageDeframer) and the `grpc-timeout` and
// `grpc-message` header values, the first things the server reads of every gRPC call.
//
// Input: a mode byte, then the data. Even mode: a request body, cut into chunks whose sizes
// come from the mode byte, deframed with a limit that also comes from it; the messages must be
// the same as a straight reading of the whole body gives. Odd mode: a `grpc-timeout` value
// (its re-encoding must not shorten it) and a `grpc-message` value (encode/decode round trip).
import FuzzDriver
import NIOCore
import RPCCore

runFuzzer { bytes in
    guard let mode = bytes.first else { return }
    let data = Array(bytes.dropFirst())
    if mode & 1 == 0 {
        checkDeframer(body: data, maxMessageSize: Int(mode >> 1) * 8, chunkSize: Int(mode >> 4) + 1)
    } else {
        checkHeaderValues(String(decoding: data, as: UTF8.self))
    }
}

func checkDeframer(body: [UInt8], maxMessageSize: Int, chunkSize: Int) {
    var deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
    var messages: [[UInt8]] = []
    var failure: GRPCMessageDeframer.Failure?
    var offset = 0
    reading: while offset < body.count {
        let end = min(offset + chunkSize, body.count)
        deframer.append(ByteBuffer(bytes: body[offset..<end]))
        offset = end
        do {
            while let message = try deframer.next() { messages.append(Array(message.readableBytesView)) }
        } catch {
            failure = error
            break reading
        }
    }
    if failure == nil {
        do { try deframer.finish() } catch { failure = error }
    }
    let expected = straightReading(body, maxMessageSize: maxMessageSize)
    precondition(messages == expected.messages, "chunked deframing gave other messages than a straight reading")
    precondition(failure == expected.failure, "chunked deframing failed with \(String(describing: failure)), a straight reading with \(String(describing: expected.failure))")
    _ = failure?.status
}

/// The gRPC length-prefixed framing read from the whole body at once.
func straightReading(_ body: [UInt8], maxMessageSize: Int) -> (messages: [[UInt8]], failure: GRPCMessageDeframer.Failure?) {
    var messages: [[UInt8]] = []
    var index = 0
    while index < body.count {
        guard body.count - index >= 5 else { return (messages, .truncatedMessage) }
        if body[index] != 0 { return (messages, .compressedMessage) }
        let length = body[index + 1...index + 4].reduce(0) { $0 << 8 | Int($1) }
        if length > maxMessageSize { return (messages, .messageTooLarge(declared: length, limit: maxMessageSize)) }
        guard body.count - index - 5 >= length else { return (messages, .truncatedMessage) }
        messages.append(Array(body[index + 5..<index + 5 + length]))
        index += 5 + length
    }
    return (messages, nil)
}

func checkHeaderValues(_ value: String) {
    if let timeout = GRPCTimeout(headerValue: value) {
        precondition(timeout.nanoseconds >= 0, "grpc-timeout \(value) parsed as negative")
        let reencoded = GRPCTimeout(headerValue: timeout.headerValue)
        precondition(reencoded != nil, "the re-encoding \(timeout.headerValue) of grpc-timeout \(value) does not parse")
        precondition(reencoded!.nanoseconds >= timeout.nanoseconds, "re-encoding grpc-timeout \(value) shortened it")
    }
    precondition(GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(value)) == value, "grpc-message round trip changed \(value)")
    _ = GRPCMessageEncoding.decode(value)
}
