import ArgumentParser

/// The ranges numeric flags must fall in. The upper bounds are far beyond any sensible setting
/// and keep every later use of the value (a sum with the current time in ms, a conversion to
/// NIO's Int64 nanoseconds, a thread or slot count) from overflowing or exhausting the
/// machine; a value outside is refused at start with a message, never a trap (docs/security.md).
enum FlagRange {
    /// 30 days: the largest time any `...-ms` flag takes.
    static let maxMilliseconds: Int64 = 30 * 24 * 3_600_000
    /// 100 years, for `--retention-hours`.
    static let maxRetentionHours: Double = 100 * 365 * 24
    /// Event-loop threads, task slots, pooled connections.
    static let maxThreadsOrSlots = 1024
    /// 1 GiB: `--max-message-bytes` (gRPC frames a message length in 32 bits).
    static let maxMessageBytes = 1 << 30

    /// Throws a `ValidationError` naming `flag` and `range` when `value` is outside it.
    static func check<Value: Comparable>(_ value: Value, _ flag: String, in range: ClosedRange<Value>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
    }

    /// A time in ms of at most `maxMilliseconds`, positive or (with `allowZero`) zero.
    static func checkMilliseconds(_ value: Int64, _ flag: String, allowZero: Bool = false) throws {
        try check(value, flag, in: (allowZero ? 0 : 1)...maxMilliseconds)
    }
}
