import Synchronization

/// Unique identifiers that sort by creation time: 48 bits of milliseconds and 80 random bits
/// in Crockford base32 (the ULID layout), 26 characters. Within one millisecond the random
/// part grows by a random step of up to 2^40 (from the system's CSPRNG), so ids made by one
/// generator sort in creation order and yet one id does not tell the next: a task id never
/// leads to another task's id.
public final class SortableIDGenerator: Sendable {
    private struct State {
        var lastMs: Int64 = -1
        var high: UInt16 = 0
        var low: UInt64 = 0
    }

    private let state = Mutex(State())
    private let clock: WallClock

    public init(clock: WallClock = .system) { self.clock = clock }

    public func next() -> String {
        let now = clock.nowMs()
        let (ms, high, low) = state.withLock { state -> (Int64, UInt16, UInt64) in
            if now > state.lastMs {
                var random = SystemRandomNumberGenerator()
                state.lastMs = now
                state.high = random.next()
                state.low = random.next()
            } else {
                // Same (or earlier: the clock stepped back) millisecond: keep order by counting up,
                // by an unpredictable step.
                var random = SystemRandomNumberGenerator()
                let step = UInt64.random(in: 1...(1 << 40), using: &random)
                let (low, overflow) = state.low.addingReportingOverflow(step)
                state.low = low
                if overflow { state.high &+= 1 }
            }
            return (state.lastMs, state.high, state.low)
        }
        return Self.encode(ms: UInt64(ms), high: high, low: low)
    }

    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func encode(ms: UInt64, high: UInt16, low: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 26)
        // 10 characters of time (50 bits, top 2 always zero for 48-bit values).
        var time = ms
        for index in stride(from: 9, through: 0, by: -1) {
            out[index] = alphabet[Int(time & 31)]
            time >>= 5
        }
        // 16 characters of randomness: 80 bits = high (16) + low (64).
        var lowBits = low
        for index in stride(from: 25, through: 13, by: -1) {  // 13 chars = 65 bits: 64 of low + 1 of high
            if index == 13 {
                out[index] = alphabet[Int((lowBits & 15) | (UInt64(high & 1) << 4))]
            } else {
                out[index] = alphabet[Int(lowBits & 31)]
                lowBits >>= 5
            }
        }
        var highBits = high >> 1
        for index in stride(from: 12, through: 10, by: -1) {
            out[index] = alphabet[Int(highBits & 31)]
            highBits >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}
