import NIOCore
import SwaplineServer
import Testing

@Suite struct CreateRateLimiterTests {
    private func at(seconds: Double) -> NIODeadline { .uptimeNanoseconds(UInt64(1_000_000_000 + seconds * 1e9)) }

    @Test func aBurstPassesThenTheClientWaitsForTheRate() {
        let limiter = CreateRateLimiter(limit: CreateRateLimit(perSecond: 2, burst: 3))
        for _ in 1...3 { #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == nil) }
        #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == 1)
        // Half a second gives one token at 2 per second.
        #expect(limiter.acquire(for: "a", now: at(seconds: 0.5)) == nil)
        #expect(limiter.acquire(for: "a", now: at(seconds: 0.5)) == 1)
        // A long pause refills only up to the burst.
        for _ in 1...3 { #expect(limiter.acquire(for: "a", now: at(seconds: 100)) == nil) }
        #expect(limiter.acquire(for: "a", now: at(seconds: 100)) != nil)
    }

    @Test func theRetryHintIsTheWholeSecondsUntilTheNextToken() {
        let limiter = CreateRateLimiter(limit: CreateRateLimit(perSecond: 0.1, burst: 1))
        #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == nil)
        #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == 10)
        #expect(limiter.acquire(for: "a", now: at(seconds: 2.5)) == 8)
        #expect(limiter.acquire(for: "a", now: at(seconds: 11)) == nil)
    }

    @Test func clientsHaveBucketsOfTheirOwn() {
        let limiter = CreateRateLimiter(limit: CreateRateLimit(perSecond: 1, burst: 1))
        #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == nil)
        #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == 1)
        #expect(limiter.acquire(for: "b", now: at(seconds: 0)) == nil)
    }

    @Test func theTableForgetsRefilledBucketsAndRefusesNewcomersWhileFull() {
        let limiter = CreateRateLimiter(limit: CreateRateLimit(perSecond: 1, burst: 2), maxClients: 2)
        #expect(limiter.acquire(for: "a", now: at(seconds: 0)) == nil)
        #expect(limiter.acquire(for: "b", now: at(seconds: 0)) == nil)
        // Both buckets are in use: a third client cannot get one.
        #expect(limiter.acquire(for: "c", now: at(seconds: 0.5)) == 1)
        #expect(limiter.trackedClients == 2)
        // Refilled buckets are as good as none: they make room.
        #expect(limiter.acquire(for: "c", now: at(seconds: 2)) == nil)
        #expect(limiter.acquire(for: "a", now: at(seconds: 2)) == nil)
        #expect(limiter.trackedClients == 2)
    }
}
