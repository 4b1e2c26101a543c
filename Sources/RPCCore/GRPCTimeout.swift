/// The `grpc-timeout` header: at most eight ASCII digits followed by a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds).
public struct GRPCTimeout: Sendable, Hashable {
    public let nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// Parses a header value; `nil` when the value breaks the grammar of the specification.
    public init?(headerValue: String) {
        let utf8 = headerValue.utf8
        guard utf8.count >= 2, utf8.count <= 9, let unit = utf8.last else { return nil }
        var amount: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let nanosPerUnit: Int64
        switch unit {
        case UInt8(ascii: "H"): nanosPerUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): nanosPerUnit = 60_000_000_000
        case UInt8(ascii: "S"): nanosPerUnit = 1_000_000_000
        case UInt8(ascii: "m"): nanosPerUnit = 1_000_000
        case UInt8(ascii: "u"): nanosPerUnit = 1_000
        case UInt8(ascii: "n"): nanosPerUnit = 1
        default: return nil
        }
        // 99,999,999 hours overflows Int64 nanoseconds; such a deadline is "never" in practice.
        let (product, overflow) = amount.multipliedReportingOverflow(by: nanosPerUnit)
        self.nanoseconds = overflow ? Int64.max : product
    }

    /// The shortest header value with at most eight digits that does not shorten the timeout
    /// by more than the unit's rounding.
    public var headerValue: String {
        let units: [(Int64, Character)] = [
            (1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"),
            (60_000_000_000, "M"), (3_600_000_000_000, "H"),
        ]
        // A negative timeout has already expired; rounding up without `nanoseconds + size - 1`,
        // which overflows for a saturated timeout (`99999999H` parses as Int64.max).
        let nanoseconds = max(self.nanoseconds, 0)
        for (size, unit) in units {
            let amount = nanoseconds / size + (nanoseconds % size == 0 ? 0 : 1)
            if amount <= 99_999_999 { return "\(amount)\(unit)" }
        }
        return "99999999H"
    }
}
