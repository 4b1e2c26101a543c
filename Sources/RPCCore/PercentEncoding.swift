/// Percent-encoding of the `grpc-message` trailer, as the gRPC HTTP/2 protocol defines it:
/// the message is UTF-8, and every byte outside printable ASCII (0x20–0x7E), as well as `%`
/// itself, is sent as `%XX`.
public enum GRPCMessageEncoding {
    public static func encode(_ message: String) -> String {
        let needsEncoding = message.utf8.contains { !isUnreserved($0) }
        guard needsEncoding else { return message }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(message.utf8.count * 3)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in message.utf8 {
            if isUnreserved(byte) {
                bytes.append(byte)
            } else {
                bytes.append(UInt8(ascii: "%"))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Decodes a received message. Malformed escapes are kept as they are, as the specification
    /// asks of receivers, rather than failing the call.
    public static func decode(_ encoded: String) -> String {
        guard encoded.utf8.contains(UInt8(ascii: "%")) else { return encoded }
        let input = Array(encoded.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        var index = 0
        while index < input.count {
            if input[index] == UInt8(ascii: "%"), index + 2 < input.count,
                let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2])
            {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(input[index])
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%")
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
