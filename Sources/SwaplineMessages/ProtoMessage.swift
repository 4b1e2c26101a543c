public import NIOCore
public import RPCCore

/// A protobuf message with a plain Swift value representation.
///
/// Conforming types are the `Swapline_V1_*`, `Grpc_Health_V1_*` and `Grpc_Testing_*` structs
/// of this module; their wire format is defined by the schemas in `proto/` and produced by
/// the protobuf-c code in `CSwaplineProto`. As `RPCMessage`s they are what methods take and
/// answer: serialized on the gRPC surface, handed over as values in process.
public protocol ProtoMessage: RPCMessage {
    /// Decodes protobuf wire bytes. Throws ProtoDecodingError for malformed input or a field over
    /// one of the `MessageLimits`, never crashes.
    init(protobufBytes bytes: ByteBuffer) throws(ProtoDecodingError)
    /// Appends the protobuf encoding of self to `buffer`.
    func encode(into buffer: inout ByteBuffer)
}

/// Protobuf bytes that do not decode as the expected message: truncated or malformed wire
/// data, a wire type that does not match a known field, a string field that is not UTF-8, or
/// a field over one of the `MessageLimits`.
public struct ProtoDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong, e.g. "malformed swapline.v1.CreateTaskRequest" or
    /// "swapline.v1.FetchTaskRequest.workflows has 40 entries; at most 32 are allowed".
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}

extension ProtoMessage {
    public init(serializedBytes bytes: ByteBuffer) throws {
        try self.init(protobufBytes: bytes)
    }

    public func serialize(into buffer: inout ByteBuffer) {
        encode(into: &buffer)
    }

    /// The protobuf encoding of self in a new buffer.
    public func serializedBuffer() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        encode(into: &buffer)
        return buffer
    }

    /// Decodes protobuf wire bytes from an array.
    public init(protobufBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        try self.init(protobufBytes: ByteBuffer(bytes: bytes))
    }
}

/// A protobuf enum: its known values plus `unrecognized(Int32)` for any other number, so that
/// values from newer peers survive decoding and re-encoding (proto3 enums are open).
///
/// `allCases` lists the known cases in wire-number order starting at 0 (every enum of this
/// module numbers its values 0, 1, 2, ... without gaps).
public protocol ProtoEnum: Sendable, Hashable, CaseIterable where AllCases == [Self] {
    /// A value this module does not know, carrying its wire number.
    static func unrecognized(_ rawValue: Int32) -> Self
    /// The wire number of the value.
    var rawValue: Int32 { get }
}

extension ProtoEnum {
    /// The value with wire number `rawValue`; `.unrecognized(rawValue)` when it is not known.
    public init(rawValue: Int32) {
        let known = Self.allCases
        self = rawValue >= 0 && rawValue < known.count ? known[Int(rawValue)] : .unrecognized(rawValue)
    }

    /// The wire number of a known case (its position in `allCases`).
    func knownRawValue() -> Int32 {
        Int32(Self.allCases.firstIndex(of: self) ?? 0)
    }
}
