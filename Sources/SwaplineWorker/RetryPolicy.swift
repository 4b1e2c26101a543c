/// How often and how patiently a failed engine call is tried again: `maxAttempts` tries in all,
/// waiting `baseDelay · 2^(n-1)` after the n-th failure, with jitter so that workers that failed
/// together do not retry together; a `Retry-After` from the engine replaces the computed wait.
public struct RetryPolicy: Sendable {
    public var maxAttempts = 3
    public var baseDelay: Duration = .milliseconds(500)
    public var maxDelay: Duration = .seconds(30)

    public init(maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30)) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The wait after failed attempt `attempt` (1-based). `jitter` in 0..<1 picks a point in the
    /// upper half of the exponential step ("equal jitter"), so the wait never collapses to zero.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration?, jitter: Double) -> Duration {
        if let retryAfter { return min(retryAfter, maxDelay) }
        let step = min(baseDelay * (1 << min(attempt - 1, 30)), maxDelay)
        return step / 2 + step / 2 * jitter
    }

    /// Runs `operation` until it succeeds, fails with an error that is not retryable, or the
    /// tries run out; the last error is thrown. `onRetry` hears of each retry before its wait.
    public func run<Result: Sendable>(
        sleep: (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        jitter: () -> Double = { Double.random(in: 0..<1) },
        onRetry: (_ failedAttempt: Int, _ error: EngineCallError, _ delay: Duration) async -> Void = { _, _, _ in },
        operation: (_ attempt: Int) async throws(EngineCallError) -> Result
    ) async throws(EngineCallError) -> Result {
        var attempt = 1
        while true {
            do {
                return try await operation(attempt)
            } catch {
                guard error.isRetryable, attempt < maxAttempts else { throw error }
                let wait = delay(afterAttempt: attempt, retryAfter: error.retryAfter, jitter: jitter())
                await onRetry(attempt, error, wait)
                do { try await sleep(wait) } catch { throw .cancelled }
                attempt += 1
            }
        }
    }
}
