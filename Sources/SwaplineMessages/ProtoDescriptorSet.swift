// The descriptors of proto/, compiled in by tools/generate-proto.sh.
internal import CSwaplineProto

/// The serialized `google.protobuf.FileDescriptorSet` of every .proto file under proto/
/// (protoc's `--descriptor_set_out`, without source info): what gRPC server reflection
/// serves, with no protoc or .proto file needed at run time.
public enum ProtoDescriptorSet {
    /// A copy of the bytes.
    public static func serialized() -> [UInt8] {
        var size = 0
        guard let start = cswaplineproto_descriptor_set(&size) else { return [] }
        return Array(UnsafeBufferPointer(start: start, count: size))
    }
}
