import NIOCore
import Synchronization

/// How fast one client may create tasks (`--create-rate`, `--create-burst`).
public struct CreateRateLimit: Sendable, Equatable, CustomStringConvertible {
    /// Tasks per second a client may create in the long run.
    public var perSecond: Double
    /// Tasks a client that kept quiet may create at once.
    public var burst: Int

    public init(perSecond: Double, burst: Int) {
        precondition(perSecond > 0 && burst >= 1, "the CLI validates the rate limit")
        self.perSecond = perSecond
        self.burst = burst
    }

    public var description: String {
        let rate = perSecond == perSecond.rounded() ? String(Int(perSecond)) : String(perSecond)
        return "\(rate) tasks per second, bursts of \(burst)"
    }
}

/// A token bucket per client for CreateTask and ProcessSync: each create takes a token, the
/// bucket refills at `perSecond` up to `burst`. A client over its rate is told how many whole
/// seconds until its next token.
///
/// The table is bounded: a bucket that has refilled to `burst` says nothing a fresh one would
/// not, so such buckets are forgotten when the table is full (a pass over the table, at most
/// once a second); while `maxClients` buckets are all in use, a client without one is refused
/// (its answer: retry after one token's refill).
public final class CreateRateLimiter: Sendable {
    /// Clients tracked at once: about 100 bytes each, so at most ~10 MiB.
    public static let defaultMaxClients = 100_000

    public let limit: CreateRateLimit
    public let maxClients: Int
    private let buckets: Mutex<BucketTable>

    public init(limit: CreateRateLimit, maxClients: Int = defaultMaxClients) {
        self.limit = limit
        self.maxClients = maxClients
        buckets = Mutex(BucketTable())
    }

    /// Takes a token of `client` at `now`: `nil` when the create may go on, otherwise the
    /// whole seconds (at least 1) until the client has a token again.
    public func acquire(for client: String, now: NIODeadline = .now()) -> Int? {
        let nowNanos = Int64(now.uptimeNanoseconds)
        return buckets.withLock { table in
            if table.buckets[client] == nil, table.buckets.count >= maxClients {
                table.forgetRefilled(at: nowNanos, limit: limit)
                if table.buckets.count >= maxClients { return Self.secondsUntil(tokens: 1, rate: limit.perSecond) }
            }
            var bucket = table.buckets[client] ?? Bucket(tokens: Double(limit.burst), refilledAtNanos: nowNanos)
            bucket.refill(at: nowNanos, limit: limit)
            guard bucket.tokens >= 1 else {
                table.buckets[client] = bucket
                return Self.secondsUntil(tokens: 1 - bucket.tokens, rate: limit.perSecond)
            }
            bucket.tokens -= 1
            table.buckets[client] = bucket
            return nil
        }
    }

    /// Clients with a bucket, for tests.
    public var trackedClients: Int { buckets.withLock { $0.buckets.count } }

    private static func secondsUntil(tokens: Double, rate: Double) -> Int {
        max(1, Int((tokens / rate).rounded(.up)))
    }
}

private struct Bucket {
    var tokens: Double
    var refilledAtNanos: Int64

    mutating func refill(at nowNanos: Int64, limit: CreateRateLimit) {
        let elapsed = Double(max(0, nowNanos - refilledAtNanos)) / 1e9
        tokens = min(Double(limit.burst), tokens + elapsed * limit.perSecond)
        refilledAtNanos = nowNanos
    }
}

private struct BucketTable {
    var buckets: [String: Bucket] = [:]

    var lastPassNanos: Int64?

    /// Drops every bucket that has refilled to the burst by `nowNanos`, unless the last pass
    /// was less than a second ago.
    mutating func forgetRefilled(at nowNanos: Int64, limit: CreateRateLimit) {
        if let lastPassNanos, nowNanos - lastPassNanos < 1_000_000_000 { return }
        lastPassNanos = nowNanos
        buckets = buckets.filter { _, bucket in
            var bucket = bucket
            bucket.refill(at: nowNanos, limit: limit)
            return bucket.tokens < Double(limit.burst)
        }
    }
}
