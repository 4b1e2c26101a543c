public import NIOCore

/// A message a method takes or answers, as the call layer sees it: a Swift value that can be
/// put on the wire and read back. The gRPC surface serializes it; an in-process caller (the
/// REST shim) hands the value over as it is.
public protocol RPCMessage: Sendable {
    /// Reads the message from its serialized form (protobuf bytes, no gRPC prefix).
    init(serializedBytes bytes: ByteBuffer) throws
    /// Appends the serialized form of self to `buffer`.
    func serialize(into buffer: inout ByteBuffer)
}

/// A message already in its serialized form: for handlers that deal in bytes (tests, and
/// methods registered with a raw `RPCHandler`).
public struct SerializedMessage: RPCMessage, Hashable {
    public var bytes: ByteBuffer

    public init(_ bytes: ByteBuffer) { self.bytes = bytes }

    public init(serializedBytes bytes: ByteBuffer) { self.bytes = bytes }

    public func serialize(into buffer: inout ByteBuffer) {
        buffer.writeImmutableBuffer(bytes)
    }
}
