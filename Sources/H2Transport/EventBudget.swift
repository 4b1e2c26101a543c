import NIOCore

/// A token bucket: `burst` tokens, refilled at `perSecond`; each event takes one.
struct EventBudget {
    private let burst: Double
    private let perSecond: Double
    private var tokens: Double
    private var refilledAt: NIODeadline

    init(burst: Double, perSecond: Double, now: NIODeadline) {
        self.burst = burst
        self.perSecond = perSecond
        self.tokens = burst
        self.refilledAt = now
    }

    /// Takes one token; `false` when the budget is spent.
    mutating func take(now: NIODeadline) -> Bool {
        let elapsedSeconds = Double((now - refilledAt).nanoseconds) / 1e9
        refilledAt = now
        tokens = min(burst, tokens + elapsedSeconds * perSecond) - 1
        return tokens >= 0
    }
}
