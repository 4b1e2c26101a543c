internal import CSwaplineProto

/// Counts the fields of a protobuf message on the wire, nested messages included, before
/// protobuf-c unpacks it.
///
/// `MessageLimits` are checked on the unpacked C structs, but unpacking itself allocates for
/// every entry on the wire: 1.8 million empty `workflows` entries in a 4 MiB FetchTaskRequest
/// cost protobuf-c about 45 MB of scratch memory (and the event loop its time) before any
/// limit could refuse them. No request the server accepts has more than a few thousand fields,
/// so a message with more than `MessageLimits.wireFields` is refused from this walk, which
/// allocates nothing. Malformed bytes end the walk quietly: protobuf-c's own parse then
/// rejects them with its usual error.
enum WireFieldCount {
    /// Throws when the message, with everything nested in it, carries more than `limit`
    /// fields (a packed repeated field counts one per byte: its most possible elements).
    static func check(
        _ bytes: UnsafeRawBufferPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
        limit: Int = MessageLimits.wireFields
    ) throws(ProtoDecodingError) {
        var budget = limit
        guard count(bytes[...], descriptor: descriptor, budget: &budget, depth: 0) else {
            let name = String(cString: descriptor.pointee.name)
            throw ProtoDecodingError(message: "\(name) carries more than \(limit) fields; at most \(limit) are allowed")
        }
    }

    /// False once `budget` runs out. Nesting deeper than `MessageLimits.wireDepth` counts as
    /// running out: no message of ours nests that deep.
    private static func count(
        _ bytes: Slice<UnsafeRawBufferPointer>, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
        budget: inout Int, depth: Int
    ) -> Bool {
        guard depth <= MessageLimits.wireDepth else { return false }
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard let tag = readVarint(bytes, &index) else { return true }
            budget -= 1
            if budget < 0 { return false }
            switch tag & 7 {
            case 0:
                guard readVarint(bytes, &index) != nil else { return true }
            case 1:
                index += 8
            case 5:
                index += 4
            case 2:
                guard let length = readVarint(bytes, &index), length <= UInt64(bytes.endIndex - index) else { return true }
                let end = index + Int(length)
                let field = UInt32(truncatingIfNeeded: tag >> 3)
                if let fieldDescriptor = protobuf_c_message_descriptor_get_field(descriptor, field) {
                    let type = fieldDescriptor.pointee.type
                    if type == PROTOBUF_C_TYPE_MESSAGE, let nested = fieldDescriptor.pointee.descriptor {
                        let nestedDescriptor = nested.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                        guard count(bytes[index..<end], descriptor: nestedDescriptor, budget: &budget, depth: depth + 1) else {
                            return false
                        }
                    } else if type != PROTOBUF_C_TYPE_STRING, type != PROTOBUF_C_TYPE_BYTES {
                        // A packed repeated scalar: at most one element per byte.
                        budget -= Int(length)
                        if budget < 0 { return false }
                    }
                }
                index = end
            default:
                return true
            }
        }
        return true
    }

    /// A base-128 varint of at most 10 bytes; nil when the bytes end first or it is longer.
    private static func readVarint(_ bytes: Slice<UnsafeRawBufferPointer>, _ index: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.endIndex, shift < 70 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
}
