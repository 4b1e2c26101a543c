@testable import SwaplinePostgres
import Testing

/// When a PostgreSQL create may skip counting the PENDING index.
@Suite struct QueueLengthEstimateTests {
    @Test func countsWithoutAReadingAndOnceItIsStale() {
        let estimate = QueueLengthEstimate()
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 0) == nil)
        estimate.counted(10, atMs: 5_000)
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 5_999) == 10)
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 6_000) == nil)
    }

    @Test func countsWithinATenthOfTheCapIncludingItsOwnCreates() {
        let estimate = QueueLengthEstimate()
        estimate.counted(898, atMs: 0)
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 1) == 898)
        estimate.admittedOne()
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 1) == 899)
        estimate.admittedOne()
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 1) == nil)
        // A fresh count replaces the reading and what was admitted since.
        estimate.counted(100, atMs: 2)
        #expect(estimate.clearlyBelow(cap: 1000, nowMs: 3) == 100)
    }

    @Test func aSmallCapIsAlwaysCheckedAtItsLimit() {
        let estimate = QueueLengthEstimate()
        estimate.counted(2, atMs: 0)
        #expect(estimate.clearlyBelow(cap: 3, nowMs: 1) == 2)
        estimate.admittedOne()
        #expect(estimate.clearlyBelow(cap: 3, nowMs: 1) == nil)
    }
}
