import SwaplineCore
import Testing

/// The result files' part of the queue contract, on every backend: retention and the result
/// lifetime record the files to delete in their own atomic step, sweeps claim them (one sweep
/// at a time), and failed deletions come back when their retry is due, also after a restart.
@Suite struct ResultDeletionContractTests {
    let clock = SteppedClock()
    let rules = TaskRules(leaseDurationMs: 1_000, maxAttempts: 2)

    private let output = TaskOutput(
        outputURL: "https://cdn.example.com/r.jpg",
        outputs: ["jpg": "https://cdn.example.com/r.jpg", "gif": "http://127.0.0.1:1/outputs/t/k/result.gif"],
        storageProvider: "gif:local,jpg:s3")

    /// Creates task `number` and ends it COMPLETED with `output` (or FAILED without).
    private func finish(_ number: Int, completed: Bool = true, on queue: any TaskQueue) async throws {
        var task = sampleRecord(number, complete: false)
        task.createdAtMs = clock.clock.nowMs()
        task.updatedAtMs = task.createdAtMs
        _ = try await queue.create(task).get()
        let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())
        let update = completed
            ? StatusUpdate(taskID: grant.task.taskID, leaseID: grant.lease.id, state: .completed, output: output)
            : StatusUpdate(taskID: grant.task.taskID, leaseID: grant.lease.id, state: .failed, error: "no face")
        _ = try await queue.update(update).get()
    }

    private func withQueue(_ backend: QueueBackend, _ body: (any TaskQueue) async throws -> Void) async throws {
        let harness = try await backend.makeHarness(rules: rules, clock: clock)
        do {
            try await body(harness.queue)
        } catch {
            await harness.tearDown()
            throw error
        }
        await harness.tearDown()
    }

    private func files(_ deletions: [ResultDeletion]) -> [String] {
        deletions.map { "\($0.taskID) \($0.provider) \($0.location) \($0.attempts)" }.sorted()
    }

    @Test(arguments: QueueBackend.available) func retentionRecordsTheFilesOfPurgedTasks(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue in
            try await finish(1, on: queue)
            try await finish(2, completed: false, on: queue)
            clock.advance(ms: 10)
            #expect(try await queue.claimDeletions(now: clock.clock.nowMs(), postponedTo: clock.clock.nowMs() + 1_000).get() == [])
            #expect(try await queue.purgeFinished(before: clock.clock.nowMs(), limit: 10).get().sorted() == ["task_1", "task_2"])

            let now = clock.clock.nowMs()
            let claimed = try await queue.claimDeletions(now: now, postponedTo: now + 1_000).get()
            #expect(files(claimed) == [
                "task_1 local http://127.0.0.1:1/outputs/t/k/result.gif 0", "task_1 s3 https://cdn.example.com/r.jpg 0",
            ])
            // Claimed: another sweep finds nothing until the hold ends.
            #expect(try await queue.claimDeletions(now: now, postponedTo: now + 1_000).get() == [])

            let gif = try #require(claimed.first { $0.provider == "local" })
            let jpg = try #require(claimed.first { $0.provider == "s3" })
            try await queue.settle([.finished(id: gif.id), .retry(id: jpg.id, attempts: 1, atMs: now + 100)]).get()
            #expect(try await queue.claimDeletions(now: now + 99, postponedTo: now + 1_000).get() == [])
            let retried = try await queue.claimDeletions(now: now + 100, postponedTo: now + 1_000).get()
            #expect(files(retried) == ["task_1 s3 https://cdn.example.com/r.jpg 1"])
            try await queue.settle([.finished(id: jpg.id)]).get()
            #expect(try await queue.claimDeletions(now: now + 5_000, postponedTo: now + 6_000).get() == [])
        }
    }

    @Test(arguments: QueueBackend.available) func theLifetimeQueuesTheFilesOnceAndKeepsTheTask(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue in
            try await finish(1, on: queue)
            try await finish(2, completed: false, on: queue)
            clock.advance(ms: 10)
            try await finish(3, on: queue)
            let cutoff = clock.clock.nowMs()
            clock.advance(ms: 10)

            #expect(try await queue.expireResults(before: cutoff).get() == 1)  // task_3 completed at the cutoff: not yet
            #expect(try await queue.expireResults(before: cutoff).get() == 0)
            let now = clock.clock.nowMs()
            let kept = try #require(try await queue.task(id: "task_1").get())
            #expect(kept.state == .completed && kept.version == 3)
            #expect(kept.output?.filesExpiredAtMs == now && kept.output?.outputs == output.outputs)
            #expect(try await queue.task(id: "task_3").get()?.output?.filesExpiredAtMs == nil)
            let claimed = try await queue.claimDeletions(now: now, postponedTo: now + 1_000).get()
            #expect(Set(claimed.map(\.taskID)) == ["task_1"] && claimed.count == 2)
            try await queue.settle(claimed.map { .finished(id: $0.id) }).get()

            // Retention later deletes the task, without its files a second time.
            #expect(try await queue.purgeFinished(before: cutoff, limit: 10).get().sorted() == ["task_1", "task_2"])
            #expect(try await queue.claimDeletions(now: now, postponedTo: now + 1_000).get() == [])
            #expect(try await queue.expireResults(before: clock.clock.nowMs()).get() == 1)
            #expect(Set(try await queue.claimDeletions(now: now, postponedTo: now + 1_000).get().map(\.taskID)) == ["task_3"])
        }
    }

    @Test(arguments: QueueBackend.available) func aPendingDeletionSurvivesARestart(_ backend: QueueBackend) async throws {
        guard backend != .inMemory else { return }
        var harness = try await backend.makeHarness(rules: rules, clock: clock)
        try await finish(1, on: harness.queue)
        clock.advance(ms: 10)
        _ = try await harness.queue.purgeFinished(before: clock.clock.nowMs(), limit: 10).get()
        let now = clock.clock.nowMs()
        let claimed = try await harness.queue.claimDeletions(now: now, postponedTo: now + 1_000).get()
        try await harness.queue.settle(claimed.map { .retry(id: $0.id, attempts: 3, atMs: now + 50) }).get()
        harness = try await harness.reopened()
        let again = try await harness.queue.claimDeletions(now: now + 50, postponedTo: now + 1_000).get()
        #expect(files(again) == [
            "task_1 local http://127.0.0.1:1/outputs/t/k/result.gif 3", "task_1 s3 https://cdn.example.com/r.jpg 3",
        ])
        await harness.tearDown()
    }
}

extension TaskQueue {
    func claimDeletions(now: Int64, postponedTo: Int64, limit: Int = 10) async -> Result<[ResultDeletion], TaskError> {
        await withCheckedContinuation { done in
            claimResultDeletions(dueByMs: now, limit: limit, postponedToMs: postponedTo) { done.resume(returning: $0) }
        }
    }

    func settle(_ outcomes: [ResultDeletionOutcome]) async -> Result<Void, TaskError> {
        await withCheckedContinuation { done in settleResultDeletions(outcomes) { done.resume(returning: $0) } }
    }

    func expireResults(before cutoffMs: Int64, limit: Int = 10) async -> Result<Int, TaskError> {
        await withCheckedContinuation { done in expireResultFiles(completedBeforeMs: cutoffMs, limit: limit) { done.resume(returning: $0) } }
    }
}
