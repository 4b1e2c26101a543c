/// Protobuf bytes that are not a well-formed message.
struct ProtoWireError: Error, CustomStringConvertible {
    var description: String
}

/// The fields of one protobuf message, read straight from its wire bytes: just enough of the
/// format to walk the descriptor protos of `ProtoDescriptorIndex` (descriptor.proto has no C
/// code in protobuf-c, and reflection needs only a few of its string and message fields).
enum ProtoWireFields {
    /// Calls `body` with the number and bytes of every length-delimited field (strings, bytes,
    /// sub-messages) in order; other fields are skipped.
    static func forEachLengthDelimited(
        in bytes: ArraySlice<UInt8>, _ body: (_ number: Int, _ value: ArraySlice<UInt8>) throws -> Void
    ) throws {
        var position = bytes.startIndex
        while position < bytes.endIndex {
            let key = try varint(in: bytes, at: &position)
            let number = Int(key >> 3)
            switch key & 7 {
            case 0: _ = try varint(in: bytes, at: &position)
            case 1: position = try advance(bytes, from: position, by: 8)
            case 2:
                let length = try varint(in: bytes, at: &position)
                guard length <= UInt64(bytes.endIndex - position) else { throw ProtoWireError(description: "field \(number) runs past the end") }
                let end = position + Int(length)
                try body(number, bytes[position..<end])
                position = end
            case 5: position = try advance(bytes, from: position, by: 4)
            default: throw ProtoWireError(description: "field \(number) has unsupported wire type \(key & 7)")
            }
        }
    }

    /// A string field's value.
    static func string(_ value: ArraySlice<UInt8>) throws -> String {
        guard let string = String(validating: value, as: UTF8.self) else { throw ProtoWireError(description: "a string is not UTF-8") }
        return string
    }

    private static func varint(in bytes: ArraySlice<UInt8>, at position: inout Int) throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard position < bytes.endIndex else { throw ProtoWireError(description: "a varint runs past the end") }
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7f) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw ProtoWireError(description: "a varint is longer than 10 bytes")
    }

    private static func advance(_ bytes: ArraySlice<UInt8>, from position: Int, by count: Int) throws -> Int {
        guard bytes.endIndex - position >= count else { throw ProtoWireError(description: "a fixed-size field runs past the end") }
        return position + count
    }
}
