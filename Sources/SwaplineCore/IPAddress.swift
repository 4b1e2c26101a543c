/// An IPv4 or IPv6 address: the bytes a socket connects to, whatever text named them.
///
/// URL hosts reach the URL policy in many spellings that all mean one address (`2130706433`,
/// `0177.0.0.1`, `0x7f.1`, `127.1` and `[::ffff:7f00:1]` are all 127.0.0.1), so the policy
/// parses every spelling into this value first and judges only the value.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    /// The 128 bits as two halves, most significant first.
    case v6(high: UInt64, low: UInt64)

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), which a
    /// dual-stack socket connects to as that IPv4 address; every other address as it is.
    public var unmapped: IPAddress {
        if case .v6(0, let low) = self, low >> 32 == 0xFFFF { return .v4(UInt32(truncatingIfNeeded: low)) }
        return self
    }

    /// The 4 or 16 bytes in network order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// Whether the first `length` bits equal those of `prefix` (same family only).
    public func isIn(_ prefix: IPAddress, length: Int) -> Bool {
        switch (self, prefix) {
        case (.v4(let value), .v4(let network)):
            guard length > 0 else { return true }
            let mask = UInt32.max << (32 - min(32, length))
            return value & mask == network & mask
        case (.v6(let high, let low), .v6(let networkHigh, let networkLow)):
            if length <= 64 {
                guard length > 0 else { return true }
                let mask = UInt64.max << (64 - length)
                return high & mask == networkHigh & mask
            }
            let mask = UInt64.max << (128 - min(128, length))
            return high == networkHigh && low & mask == networkLow & mask
        default:
            return false
        }
    }

    /// Dotted quad for IPv4; RFC 5952 for IPv6 (lower case, the longest run of two or more
    /// zero groups as `::`), with IPv4-mapped addresses as `::ffff:a.b.c.d`. Every form here is
    /// accepted by `inet_pton`.
    public var description: String {
        switch self {
        case .v4(let value):
            return Self.dottedQuad(value)
        case .v6(let high, let low):
            if high == 0, low >> 32 == 0xFFFF { return "::ffff:" + Self.dottedQuad(UInt32(truncatingIfNeeded: low)) }
            let groups = (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * $0)) }
                + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * $0)) }
            var bestStart = -1
            var bestLength = 1
            var index = 0
            while index < 8 {
                guard groups[index] == 0 else { index += 1; continue }
                var end = index
                while end < 8, groups[end] == 0 { end += 1 }
                if end - index > bestLength { (bestStart, bestLength) = (index, end - index) }
                index = end
            }
            func hex(_ range: Range<Int>) -> String {
                groups[range].map { String($0, radix: 16) }.joined(separator: ":")
            }
            guard bestStart >= 0 else { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }

    private static func dottedQuad(_ value: UInt32) -> String {
        "\(value >> 24).\((value >> 16) & 0xFF).\((value >> 8) & 0xFF).\(value & 0xFF)"
    }
}

// MARK: - Parsing

extension IPAddress {
    /// What a URL host that is not in brackets means, decided the way WHATWG URL parsers and
    /// glibc's `inet_aton` (which `getaddrinfo` applies to numeric names) both read it.
    public enum HostSpelling: Sendable, Equatable {
        /// A domain name: its last label is not a number.
        case name
        /// An IPv4 address in any of `inet_aton`'s spellings.
        case ipv4(IPAddress)
        /// The last label is a number but the whole is no IPv4 address (`1.2.3.4.5`,
        /// `256.1.1.1`, `08.1.1.1`): refused rather than left for a resolver to interpret.
        case invalidIPv4
    }

    /// Reads a lower-cased host without brackets and without its trailing dot. A host whose
    /// last label is a number (decimal, `0`-prefixed octal or `0x` hex) is an IPv4 address:
    /// one to four parts, the last one filling the remaining bytes (`127.1`, `0x7f.1`,
    /// `2130706433`, `0`).
    public static func spelling(ofHost host: Substring) -> HostSpelling {
        // Most hosts are names: judged by their last label alone, without splitting them
        // (every CreateTask checks two URLs).
        let lastStart = host.utf8.lastIndex(of: UInt8(ascii: ".")).map { host.utf8.index(after: $0) } ?? host.startIndex
        guard Self.isNumber(host[lastStart...]) else { return .name }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count <= 4 else { return .invalidIPv4 }
        var parts: [UInt64] = []
        for label in labels {
            guard let value = Self.number(label) else { return .invalidIPv4 }
            parts.append(value)
        }
        let leading = parts.dropLast()
        guard leading.allSatisfy({ $0 <= 255 }) else { return .invalidIPv4 }
        let lastLimit: UInt64 = 1 << (8 * (5 - UInt64(parts.count)))
        guard parts[parts.count - 1] < lastLimit else { return .invalidIPv4 }
        var value = parts[parts.count - 1]
        for (index, part) in leading.enumerated() { value |= part << (8 * (3 - UInt64(index))) }
        return .ipv4(.v4(UInt32(value)))
    }

    /// WHATWG's "ends in a number": all digits, or `0x` followed by hex digits only.
    private static func isNumber(_ label: Substring) -> Bool {
        let bytes = label.utf8
        guard !bytes.isEmpty else { return false }
        let isDigit = { (byte: UInt8) in (0x30...0x39).contains(byte) }
        if bytes.allSatisfy(isDigit) { return true }
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "0"),
            bytes.dropFirst().first.map({ $0 | 0x20 == UInt8(ascii: "x") }) == true
        else { return false }
        return bytes.dropFirst(2).allSatisfy { isDigit($0) || (0x61...0x66).contains($0 | 0x20) }
    }

    /// One part of an `inet_aton` address; nil when empty, malformed or absurdly long.
    private static func number(_ label: Substring) -> UInt64? {
        var digits = label
        var radix = 10
        if digits.count >= 2, digits.first == "0", digits.dropFirst().first.map({ $0 == "x" || $0 == "X" }) == true {
            digits = digits.dropFirst(2)
            radix = 16
            // "0x" alone is zero to WHATWG but malformed to inet_aton: refused, as any disagreement is.
            if digits.isEmpty { return nil }
        } else if digits.count >= 2, digits.first == "0" {
            digits = digits.dropFirst()
            radix = 8
        }
        // Checked by hand: the integer parser would also take a leading "+".
        let valid: (Character) -> Bool = radix == 16 ? { $0.isASCIIHexDigit } : radix == 8 ? { ("0"..."7").contains($0) } : { $0.isASCIIDigit }
        guard !digits.isEmpty, digits.count <= 16, digits.allSatisfy(valid) else { return nil }
        return UInt64(digits, radix: radix)
    }

    /// Parses an IPv6 address as RFC 4291 §2.2 writes it (no brackets, no zone id), also with
    /// a dotted-quad tail (`::ffff:127.0.0.1`, `::127.0.0.1`).
    public init?(ipv6 text: Substring) {
        var groups: [UInt16] = []
        var compressionAt: Int?
        var rest = text[...]
        if rest.hasPrefix("::") {
            compressionAt = 0
            rest = rest.dropFirst(2)
            if rest.isEmpty {
                self = .v6(high: 0, low: 0)
                return
            }
        } else if rest.hasPrefix(":") {
            return nil
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            let piece = rest[rest.startIndex..<end]
            if piece.contains(".") {
                // A dotted quad ends the address and fills two groups.
                guard end == rest.endIndex, groups.count <= 6, let v4 = Self.strictDottedQuad(piece) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xFFFF))
                rest = rest[end...]
                break
            }
            guard (1...4).contains(piece.count), piece.allSatisfy(\.isASCIIHexDigit), let value = UInt16(piece, radix: 16) else { return nil }
            groups.append(value)
            rest = rest[end...]
            if rest.hasPrefix("::") {
                guard compressionAt == nil else { return nil }
                compressionAt = groups.count
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                guard !rest.isEmpty else { return nil }
            }
        }
        if let compressionAt {
            guard groups.count <= 7 else { return nil }
            groups.insert(contentsOf: Array(repeating: 0, count: 8 - groups.count), at: compressionAt)
        }
        guard groups.count == 8 else { return nil }
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        self = .v6(high: high, low: low)
    }

    /// The address of 4 or 16 bytes in network order (as a socket address holds it).
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16:
            self = .v6(
                high: bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) },
                low: bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        default:
            return nil
        }
    }

    /// Parses a numeric address as `inet_ntop` and `getnameinfo(NI_NUMERICHOST)` print them:
    /// a strict dotted quad, or IPv6 text.
    public init?(numeric text: String) {
        if let v4 = Self.strictDottedQuad(text[...]) {
            self = .v4(v4)
        } else if let v6 = IPAddress(ipv6: text[...]) {
            self = v6
        } else {
            return nil
        }
    }

    /// Four decimal parts of 0...255 without leading zeros, as `inet_pton` accepts them.
    private static func strictDottedQuad(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCIIDigit), part == "0" || part.first != "0",
                let byte = UInt32(part), byte <= 255
            else { return nil }
            value = value << 8 | byte
        }
        return value
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
    fileprivate var isASCIIHexDigit: Bool { isASCII && isHexDigit }
}
