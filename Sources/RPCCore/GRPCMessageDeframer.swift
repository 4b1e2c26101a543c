import NIOCore

/// Splits a request body into gRPC messages (1-byte compressed flag, 4-byte big-endian length,
/// then the message).
///
/// Limits are checked on the 5-byte prefix alone, so a peer that declares an oversized message
/// is refused before a single byte of it is buffered.
public struct GRPCMessageDeframer {
    public enum Failure: Error, Equatable, Sendable {
        /// The compressed flag was set; this server offers no compression.
        case compressedMessage
        /// The declared length exceeds `maxMessageSize`.
        case messageTooLarge(declared: Int, limit: Int)
        /// The body ended in the middle of a message.
        case truncatedMessage

        public var status: GRPCStatus {
            switch self {
            case .compressedMessage:
                return GRPCStatus(
                    .unimplemented, "compressed messages are not supported (grpc-accept-encoding: identity)")
            case .messageTooLarge(let declared, let limit):
                return GRPCStatus(
                    .resourceExhausted,
                    "message of \(declared) bytes exceeds the maximum of \(limit) bytes")
            case .truncatedMessage:
                return GRPCStatus(.internal, "request body ended inside a length-prefixed message")
            }
        }
    }

    public let maxMessageSize: Int
    private var buffer: ByteBuffer?

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// Appends received body bytes.
    public mutating func append(_ bytes: ByteBuffer) {
        if buffer == nil {
            buffer = bytes
        } else {
            var incoming = bytes
            buffer!.writeBuffer(&incoming)
        }
    }

    /// The next complete message, `nil` when more bytes are needed.
    public mutating func next() throws(Failure) -> ByteBuffer? {
        guard var current = buffer, current.readableBytes >= 5 else { return nil }
        let flag = current.getInteger(at: current.readerIndex, as: UInt8.self)!
        let length = Int(current.getInteger(at: current.readerIndex + 1, as: UInt32.self)!)
        if flag != 0 { throw .compressedMessage }
        if length > maxMessageSize { throw .messageTooLarge(declared: length, limit: maxMessageSize) }
        guard current.readableBytes >= 5 + length else { return nil }
        current.moveReaderIndex(forwardBy: 5)
        let message = current.readSlice(length: length)!
        // Drop the reference once drained, so the next body chunk does not copy into it.
        buffer = current.readableBytes == 0 ? nil : current
        return message
    }

    /// Call when the body has ended: leftover bytes mean a truncated message.
    public func finish() throws(Failure) {
        if let buffer, buffer.readableBytes > 0 { throw .truncatedMessage }
    }
}

/// A response message with its gRPC length prefix, ready for the transport. Encoders write
/// straight behind the reserved prefix, so a message is never copied to be framed.
public struct GRPCFramedMessage: Sendable {
    public let buffer: ByteBuffer

    /// Encodes a message in place behind its prefix.
    public init(capacity: Int = 256, encode: (inout ByteBuffer) -> Void) {
        var buffer = ByteBufferAllocator().buffer(capacity: capacity)
        GRPCMessageFramer.frame(into: &buffer, encode: encode)
        self.buffer = buffer
    }

    /// Frames already-encoded message bytes (one copy).
    public init(message: ByteBuffer) {
        var buffer = ByteBufferAllocator().buffer(capacity: GRPCMessageFramer.prefixLength + message.readableBytes)
        GRPCMessageFramer.frame(message, into: &buffer)
        self.buffer = buffer
    }
}

/// Writes the gRPC length prefix in front of a message.
public enum GRPCMessageFramer {
    public static let prefixLength = 5

    /// Appends the prefix and `message` to `buffer`.
    public static func frame(_ message: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.readableBytes))
        var message = message
        buffer.writeBuffer(&message)
    }

    /// Frames a message whose encoder writes straight into the outbound buffer: the prefix is
    /// reserved first and its length filled in afterwards, so the message is never copied.
    public static func frame(into buffer: inout ByteBuffer, encode: (inout ByteBuffer) -> Void) {
        let prefixIndex = buffer.writerIndex
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(0))
        let start = buffer.writerIndex
        encode(&buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start), at: prefixIndex + 1)
    }
}
