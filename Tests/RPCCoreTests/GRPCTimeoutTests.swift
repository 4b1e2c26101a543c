import Testing
@testable import RPCCore

@Suite struct GRPCTimeoutTests {
    @Test(arguments: [
        ("1H", Int64(3_600_000_000_000)), ("2M", 120_000_000_000), ("3S", 3_000_000_000), ("250m", 250_000_000),
        ("7u", 7_000), ("99999999n", 99_999_999),
    ])
    func parsesEveryUnit(value: String, nanoseconds: Int64) {
        #expect(GRPCTimeout(headerValue: value)?.nanoseconds == nanoseconds)
    }

    @Test(arguments: ["", "S", "10", "123456789S", "1.5S", "-1S", "10s", "1 S", "٣S"])
    func rejectsMalformedValues(value: String) {
        #expect(GRPCTimeout(headerValue: value) == nil)
    }

    @Test func hugeHourValuesSaturateInsteadOfOverflowing() {
        #expect(GRPCTimeout(headerValue: "99999999H")?.nanoseconds == Int64.max)
    }

    @Test func encodesWithinEightDigitsRoundingUp() {
        #expect(GRPCTimeout(nanoseconds: 1_500).headerValue == "1500n")
        #expect(GRPCTimeout(nanoseconds: 120_000_000_001).headerValue == "120001m")
        #expect(GRPCTimeout(nanoseconds: 3_600_000_000_000 * 1_000).headerValue == "3600000S")
    }

    /// Found by fuzz-grpc-framing: re-encoding a saturated timeout overflowed and trapped.
    @Test func encodesTimeoutsNearInt64MaxWithoutOverflow() {
        let saturated = GRPCTimeout(headerValue: "99999999H")!
        #expect(saturated.headerValue == "2562048H")
        #expect(GRPCTimeout(headerValue: saturated.headerValue)?.nanoseconds == Int64.max)
        #expect(GRPCTimeout(nanoseconds: Int64.max - 1).headerValue == "2562048H")
    }

    @Test func encodesANegativeTimeoutAsZero() {
        #expect(GRPCTimeout(nanoseconds: -5).headerValue == "0n")
    }
}
