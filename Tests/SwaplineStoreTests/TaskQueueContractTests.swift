import Foundation
import Synchronization
import SwaplineCore
import SwaplineStore
import Testing

/// The queue backends the contract runs against. A new backend adds a case and a harness, and
/// passes the same tests.
enum QueueBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory
    case sqlite
    /// Only when `SWAPLINE_TEST_POSTGRES_URL` names a cluster (tools/test.sh starts one).
    case postgres

    var testDescription: String { rawValue }

    /// The backends this run can test.
    static var available: [QueueBackend] {
        PostgresTestDatabase.isAvailable ? allCases : allCases.filter { $0 != .postgres }
    }

    func makeHarness(rules: TaskRules, clock: SteppedClock) async throws -> any QueueHarness {
        switch self {
        case .inMemory: return MemoryQueueHarness(queue: InMemoryTaskQueue(rules: rules, clock: clock.clock))
        case .sqlite: return try SQLiteQueueHarness(rules: rules, clock: clock)
        case .postgres: return try await PostgresQueueHarness.make(rules: rules, clock: clock)
        }
    }
}

/// A backend on fresh storage, reopened the way a restarted server would open it.
protocol QueueHarness: Sendable {
    var queue: any TaskQueue { get }
    /// Closes the queue and opens a new one on the same storage (a restart).
    func reopened() async throws -> any QueueHarness
    /// Closes the queue and deletes its storage.
    func tearDown() async
}

struct MemoryQueueHarness: QueueHarness {
    let queue: any TaskQueue
    /// Nothing survives a restart of an in-memory queue: "reopening" keeps the instance.
    func reopened() async throws -> any QueueHarness { self }
    func tearDown() async {}
}

struct SQLiteQueueHarness: QueueHarness {
    let directory: TemporaryDirectory
    let rules: TaskRules
    let clock: SteppedClock
    let sqlite: SQLiteTaskQueue
    var queue: any TaskQueue { sqlite }

    init(rules: TaskRules, clock: SteppedClock, directory: TemporaryDirectory? = nil) throws {
        self.directory = try directory ?? TemporaryDirectory()
        self.rules = rules
        self.clock = clock
        sqlite = try SQLiteTaskQueue.open(in: self.directory, rules: rules, clock: clock)
    }

    func reopened() async throws -> any QueueHarness {
        await sqlite.close()
        return try SQLiteQueueHarness(rules: rules, clock: clock, directory: directory)
    }

    func tearDown() async {
        await sqlite.close()
        directory.remove()
    }
}

/// The behaviour every backend shares: the atomic operations of `TaskQueue` under `TaskRules`.
@Suite struct TaskQueueContractTests {
    let clock = SteppedClock()
    let rules = TaskRules(leaseDurationMs: 1_000, maxAttempts: 2)

    func withQueue(
        _ backend: QueueBackend, quotas: TaskQuotas = TaskQuotas(), _ body: (any TaskQueue, ChangeLog) async throws -> Void
    ) async throws {
        var rules = rules
        rules.quotas = quotas
        let harness = try await backend.makeHarness(rules: rules, clock: clock)
        let changes = ChangeLog()
        harness.queue.setChangeHandler { changes.append($0) }
        do {
            try await body(harness.queue, changes)
        } catch {
            await harness.tearDown()
            throw error
        }
        await harness.tearDown()
    }

    func pending(_ number: Int, priority: Int32 = 0, workflow: String = "face_swap", key: String? = nil) -> TaskRecord {
        var task = sampleRecord(number, complete: false)
        task.priority = priority
        task.workflow = workflow
        task.idempotencyKey = key
        task.createdAtMs = clock.clock.nowMs() + Int64(number)
        task.updatedAtMs = task.createdAtMs
        return task
    }

    @Test(arguments: QueueBackend.available) func createdTasksAreStoredAndFed(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, changes in
            var task = pending(1)
            task.params.options = ["face_selector_mode": "one", "note": "quotes \" and \\ and ü"]
            #expect(try await queue.create(task).get() == .created(task))
            #expect(try await queue.task(id: task.taskID).get() == task)
            #expect(try await queue.task(id: "task_missing").get() == nil)
            try await eventually { !changes.all.isEmpty }
            #expect(changes.all == [task])
        }
    }

    @Test(arguments: QueueBackend.available) func anIdempotencyKeyNamesOneTask(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, changes in
            let first = pending(1, key: "order-7")
            _ = try await queue.create(first).get()
            #expect(try await queue.create(pending(2, key: "order-7")).get() == .existing(first))
            #expect(try await queue.task(id: "task_2").get() == nil)
            try await eventually { !changes.all.isEmpty }
            #expect(changes.all.map(\.taskID) == ["task_1"])
        }
    }

    @Test(arguments: QueueBackend.available) func idempotencyKeysAreScopedToTheirOwner(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            var mine = pending(1, key: "order-7")
            mine.owner = "sha256:aa"
            var theirs = pending(2, key: "order-7")
            theirs.owner = "sha256:bb"
            var again = pending(3, key: "order-7")
            again.owner = "sha256:aa"
            let outcomes = [try await queue.create(mine).get(), try await queue.create(theirs).get(), try await queue.create(again).get()]
            #expect(outcomes == [.created(mine), .created(theirs), .existing(mine)])
            let stored = try await queue.task(id: theirs.taskID).get()
            #expect(stored?.owner == "sha256:bb")
        }
    }

    @Test(arguments: QueueBackend.available) func claimsFollowPriorityThenAgeWithinTheWorkflows(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for task in [pending(1), pending(2, priority: 5), pending(3), pending(4, priority: 5), pending(5, workflow: "other")] {
                _ = try await queue.create(task).get()
            }
            var order: [String] = []
            while let grant = try await queue.claim(["face_swap"], consumer: "c1").get() {
                #expect(grant.task.state == .processing && grant.task.attempt == 1 && grant.task.version == 2)
                #expect(grant.lease.consumerID == "c1" && grant.task.lease == grant.lease)
                #expect(grant.lease.expiresAtMs == clock.clock.nowMs() + 1_000)
                order.append(grant.task.taskID)
            }
            #expect(order == ["task_2", "task_4", "task_1", "task_3"])
            #expect(try await queue.claim(["other", "face_swap"], consumer: "c2").get()?.task.taskID == "task_5")
        }
    }

    @Test(arguments: QueueBackend.available) func concurrentClaimsNeverShareATask(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for number in 1...100 { _ = try await queue.create(pending(number)).get() }
            let grants = await withTaskGroup(of: String?.self) { group in
                for claimer in 0..<160 {
                    group.addTask { try? await queue.claim(["face_swap"], consumer: "c\(claimer)").get()?.task.taskID }
                }
                return await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(grants.count == 100)
            #expect(Set(grants).count == 100)
        }
    }

    @Test(arguments: QueueBackend.available) func updatesAreFencedByTheCurrentLease(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            _ = try await queue.create(pending(1)).get()
            let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())
            let stale = await queue.update(StatusUpdate(taskID: "task_1", leaseID: "lease_other", state: .processing))
            #expect(stale.error?.kind == .failedPrecondition)
            clock.advance(ms: 600)
            let progress = try await queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .processing, progress: 0.5)).get()
            #expect(progress.progress == 0.5 && progress.lease?.expiresAtMs == clock.clock.nowMs() + 1_000)
            let output = TaskOutput(outputURL: "https://cdn.example.com/1.jpg", outputs: ["gif": "https://cdn.example.com/1.gif"], processingTime: 2.5, jobID: "job_1", storageProvider: "local")
            let done = try await queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .completed, output: output)).get()
            #expect(done.state == .completed && done.output == output && done.lease == nil && done.version == 4)
            #expect(try await queue.task(id: "task_1").get() == done)
            let late = await queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .failed, error: "late"))
            #expect(late.error?.kind == .failedPrecondition)
            #expect(await queue.update(StatusUpdate(taskID: "task_9", leaseID: "x", state: .processing)).error?.kind == .notFound)
        }
    }

    @Test(arguments: QueueBackend.available) func aCancelBeatsALateCompletion(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, changes in
            _ = try await queue.create(pending(1)).get()
            let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())
            let cancelled = try await queue.cancel("task_1").get()
            #expect(cancelled.state == .cancelled && cancelled.lease == nil)
            let report = await queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .completed, output: TaskOutput(outputURL: "u")))
            #expect(report.error?.kind == .aborted)
            // A finished task is answered as it is, and nothing is written or fed.
            #expect(try await queue.cancel("task_1").get() == cancelled)
            try await eventually { changes.all.count >= 3 }
            #expect(changes.all.map(\.version) == [1, 2, 3])
            #expect(await queue.cancel("task_9").error?.kind == .notFound)
        }
    }

    @Test(arguments: QueueBackend.available) func anUndeliveredLeaseGoesBackWithoutCountingAnAttempt(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            _ = try await queue.create(pending(1)).get()
            let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())
            #expect(try await queue.handBack("task_1", lease: "lease_other").get() == nil)
            let returned = try #require(try await queue.handBack("task_1", lease: grant.lease.id).get())
            #expect(returned.state == .pending && returned.attempt == 0 && returned.lease == nil)
            #expect(try await queue.handBack("task_1", lease: grant.lease.id).get() == nil)
            #expect(try await queue.claim(["face_swap"], consumer: "c2").get()?.task.attempt == 1)
        }
    }

    @Test(arguments: QueueBackend.available) func expiredLeasesRequeueThenFailAfterMaxAttempts(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            _ = try await queue.create(pending(1)).get()
            _ = try await queue.claim(["face_swap"], consumer: "c1").get()
            #expect(try await queue.expireLeases(limit: 10).get() == 0)
            clock.advance(ms: 1_000)
            #expect(try await queue.expireLeases(limit: 10).get() == 1)
            let requeued = try #require(try await queue.task(id: "task_1").get())
            #expect(requeued.state == .pending && requeued.attempt == 1 && requeued.lease == nil)
            _ = try await queue.claim(["face_swap"], consumer: "c2").get()
            clock.advance(ms: 1_000)
            #expect(try await queue.expireLeases(limit: 10).get() == 1)
            let failed = try #require(try await queue.task(id: "task_1").get())
            #expect(failed.state == .failed && failed.error.contains("attempt 2 of 2"))
        }
    }

    @Test(arguments: QueueBackend.available) func expiryHandlesAtMostItsLimit(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for number in 1...5 { _ = try await queue.create(pending(number)).get() }
            for _ in 1...5 { _ = try await queue.claim(["face_swap"], consumer: "c1").get() }
            clock.advance(ms: 1_000)
            #expect(try await queue.expireLeases(limit: 3).get() == 3)
            #expect(try await queue.expireLeases(limit: 3).get() == 2)
        }
    }

    @Test(arguments: QueueBackend.available) func retentionDeletesOldFinishedTasksOldestFirst(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for number in 1...4 { _ = try await queue.create(pending(number)).get() }
            for _ in 1...3 {
                clock.advance(ms: 10)
                let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())
                _ = try await queue.update(StatusUpdate(taskID: grant.task.taskID, leaseID: grant.lease.id, state: .failed, error: "no face")).get()
            }
            let cutoff = clock.clock.nowMs() + 1
            #expect(try await queue.purgeFinished(before: cutoff, limit: 2).get() == ["task_1", "task_2"])
            #expect(try await queue.purgeFinished(before: cutoff, limit: 2).get() == ["task_3"])
            #expect(try await queue.purgeFinished(before: cutoff, limit: 2).get() == [])
            #expect(try await queue.task(id: "task_1").get() == nil)
            #expect(try await queue.task(id: "task_4").get()?.state == .pending)
        }
    }

    @Test(arguments: QueueBackend.available) func thePurgedKeyCanBeUsedAgain(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            _ = try await queue.create(pending(1, key: "k")).get()
            _ = try await queue.cancel("task_1").get()
            clock.advance(ms: 10)
            #expect(try await queue.purgeFinished(before: clock.clock.nowMs(), limit: 10).get() == ["task_1"])
            #expect(try await queue.create(pending(2, key: "k")).get() == .created(pending(2, key: "k")))
        }
    }

    /// Regression (issue 9): CancelTask read the task again after letting go of the lock, and a
    /// retention purge in between crashed the server. A cancel answers what it wrote.
    @Test(arguments: QueueBackend.available) func cancelsRacingRetentionAnswerWhatTheyWrote(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for number in 1...40 { _ = try await queue.create(pending(number)).get() }
            let cutoff = clock.clock.nowMs() + 1_000
            let cancelled = await withTaskGroup(of: TaskRecord?.self) { group in
                for number in 1...40 {
                    group.addTask { try? await queue.cancel("task_\(number)").get() }
                    group.addTask { _ = await queue.purgeFinished(before: cutoff, limit: 5); return nil }
                }
                return await group.reduce(into: [TaskRecord]()) { if let task = $1 { $0.append(task) } }
            }
            #expect(cancelled.count == 40)
            #expect(cancelled.allSatisfy { $0.state == .cancelled && $0.version == 2 })
        }
    }

    @Test(arguments: QueueBackend.available) func theChangeFeedCarriesEveryCommittedChangeInOrder(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, changes in
            _ = try await queue.create(pending(1)).get()
            let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())
            for step in 1...5 {
                _ = try await queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .processing, progress: Float(step) / 10)).get()
            }
            _ = try await queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .failed, error: "engine down")).get()
            try await eventually { changes.all.count == 8 }
            #expect(changes.all.map(\.version) == Array(1...8))
            #expect(changes.all.last?.state == .failed)
        }
    }

    @Test(arguments: QueueBackend.available) func aCopyCarriesEveryTaskAsItIs(_ backend: QueueBackend) async throws {
        let source = try await backend.makeHarness(rules: rules, clock: clock)
        let target = try await backend.makeHarness(rules: rules, clock: clock)
        guard let from = source.queue as? any TaskTransfer, let to = target.queue as? any TaskTransfer else {
            await source.tearDown()
            await target.tearDown()
            return
        }
        for number in 1...25 { _ = try await from.create(pending(number, key: number % 5 == 0 ? "key-\(number)" : nil)).get() }
        let grant = try #require(try await from.claim(["face_swap"], consumer: "c1").get())
        _ = try await from.update(StatusUpdate(taskID: grant.task.taskID, leaseID: grant.lease.id, state: .completed, output: TaskOutput(outputURL: "u", outputs: ["gif": "g"]))).get()
        _ = try await from.claim(["face_swap"], consumer: "c2").get()
        _ = try await from.cancel("task_20").get()
        var copied: [TaskRecord] = []
        var last = ""
        while true {
            let page = try await from.exportTasks(after: last, limit: 10)
            try await to.importTasks(page)
            try await to.importTasks(page)  // a second run changes nothing
            copied += page
            guard page.count == 10, let end = page.last?.taskID else { break }
            last = end
        }
        #expect(copied.map(\.taskID) == copied.map(\.taskID).sorted() && copied.count == 25)
        for task in copied {
            #expect(try await to.task(id: task.taskID).get() == task)
        }
        #expect(try await to.create(pending(99, key: "key-5")).get().task.taskID == "task_5")
        #expect(try await to.claim(["face_swap"], consumer: "c3").get()?.task.taskID == "task_3")
        await source.tearDown()
        await target.tearDown()
    }

    // MARK: - Quotas

    private func pending(_ number: Int, owner: String, key: String? = nil) -> TaskRecord {
        var task = pending(number, key: key)
        task.owner = owner
        return task
    }

    @Test(arguments: QueueBackend.available) func openTasksPerOwnerAreCapped(_ backend: QueueBackend) async throws {
        try await withQueue(backend, quotas: TaskQuotas(maxOpenTasksPerOwner: 2)) { queue, _ in
            let first = pending(1, owner: "alice", key: "k")
            _ = try await queue.create(first).get()
            _ = try await queue.create(pending(2, owner: "alice")).get()
            let refusal = await queue.create(pending(3, owner: "alice"))
            guard case .failure(let error) = refusal else { Issue.record("a third open task was stored: \(refusal)"); return }
            #expect(error.kind == .resourceExhausted && error.message.contains("'alice' already has 2 open"))
            #expect(try await queue.task(id: "task_3").get() == nil)
            // A repeated create of a stored task is answered, not refused.
            #expect(try await queue.create(pending(4, owner: "alice", key: "k")).get() == .existing(first))
            // Other owners, and tasks of no owner (no tokens), are not alice's.
            _ = try await queue.create(pending(5, owner: "bob")).get()
            for number in 6...8 { _ = try await queue.create(pending(number, owner: "")).get() }
            // A claimed task is still open; a cancelled one is not.
            _ = try await queue.claim(["face_swap"], consumer: "c1").get()
            #expect(await queue.create(pending(9, owner: "alice")).map(\.task.taskID) == .failure(error))
            _ = try await queue.cancel("task_1").get()
            #expect(try await queue.create(pending(10, owner: "alice")).get().task.taskID == "task_10")
        }
    }

    @Test(arguments: QueueBackend.available) func theQueueLengthIsCapped(_ backend: QueueBackend) async throws {
        try await withQueue(backend, quotas: TaskQuotas(maxQueueLength: 2)) { queue, _ in
            _ = try await queue.create(pending(1)).get()
            _ = try await queue.create(pending(2)).get()
            let refusal = await queue.create(pending(3))
            guard case .failure(let error) = refusal else { Issue.record("a third PENDING task was stored: \(refusal)"); return }
            #expect(error.kind == .resourceExhausted && error.message.contains("queue is full"))
            #expect(error.retryAfterSeconds == TaskQuotas.queueFullRetryAfterSeconds)
            // A claimed task has left the queue.
            _ = try await queue.claim(["face_swap"], consumer: "c1").get()
            _ = try await queue.create(pending(4)).get()
            #expect(await queue.create(pending(5)).map(\.task.taskID) == .failure(error))
            // Back in the queue after its lease ran out: the queue is over its cap until it drains.
            clock.advance(ms: 1_000)
            #expect(try await queue.expireLeases(limit: 10).get() == 1)
            _ = try await queue.claim(["face_swap"], consumer: "c2").get()
            _ = try await queue.claim(["face_swap"], consumer: "c2").get()
            #expect(try await queue.create(pending(6)).get().task.taskID == "task_6")
        }
    }

    @Test(arguments: QueueBackend.available) func tasksPendingTooLongFailAsExpired(_ backend: QueueBackend) async throws {
        try await withQueue(backend, quotas: TaskQuotas(maxPendingAgeMs: 5_000)) { queue, changes in
            // pending(n) was last changed at now + n.
            for number in 1...3 { _ = try await queue.create(pending(number)).get() }
            _ = try await queue.cancel("task_3").get()
            clock.advance(ms: 5_001)
            #expect(try await queue.expireLeases(limit: 10).get() == 1)
            let failed = try #require(try await queue.task(id: "task_1").get())
            #expect(failed.state == .failed && failed.error.contains("stage queue") && failed.error.contains("5000 ms"))
            #expect(try await queue.task(id: "task_2").get()?.state == .pending)
            try await eventually { changes.all.contains(failed) }
            clock.advance(ms: 1)
            #expect(try await queue.expireLeases(limit: 10).get() == 1)
            #expect(try await queue.task(id: "task_2").get()?.state == .failed)
            clock.advance(ms: 60_000)
            #expect(try await queue.expireLeases(limit: 10).get() == 0)
            #expect(try await queue.task(id: "task_3").get()?.state == .cancelled)
        }
    }

    private func isRefused(_ outcome: Result<CreateOutcome, TaskError>) -> Bool {
        if case .failure(let error) = outcome { return error.kind == .resourceExhausted }
        return false
    }

    @Test(arguments: QueueBackend.available) func aRestartKeepsWhatTheQuotasCount(_ backend: QueueBackend) async throws {
        guard backend != .inMemory else { return }
        var rules = rules
        rules.quotas = TaskQuotas(maxOpenTasksPerOwner: 2, maxQueueLength: 2)
        var harness = try await backend.makeHarness(rules: rules, clock: clock)
        _ = try await harness.queue.create(pending(1, owner: "alice")).get()
        _ = try await harness.queue.create(pending(2, owner: "alice")).get()
        harness = try await harness.reopened()
        #expect(await isRefused(harness.queue.create(pending(3, owner: "bob"))))
        _ = try await harness.queue.claim(["face_swap"], consumer: "c1").get()
        harness = try await harness.reopened()
        #expect(await isRefused(harness.queue.create(pending(4, owner: "alice"))))
        #expect(try await harness.queue.create(pending(5, owner: "bob")).get().task.taskID == "task_5")
        await harness.tearDown()
    }

    @Test(arguments: QueueBackend.available) func aRestartKeepsTasksAndLeases(_ backend: QueueBackend) async throws {
        guard backend != .inMemory else { return }
        var harness = try await backend.makeHarness(rules: rules, clock: clock)
        _ = try await harness.queue.create(pending(1)).get()
        _ = try await harness.queue.create(pending(2, key: "k")).get()
        let grant = try #require(try await harness.queue.claim(["face_swap"], consumer: "c1").get())
        harness = try await harness.reopened()
        #expect(try await harness.queue.task(id: "task_1").get() == grant.task)
        #expect(try await harness.queue.create(pending(3, key: "k")).get().task.taskID == "task_2")
        #expect(try await harness.queue.claim(["face_swap"], consumer: "c2").get()?.task.taskID == "task_2")
        let done = await harness.queue.update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .completed, output: TaskOutput(outputURL: "u")))
        #expect(done.map(\.state) == .success(.completed))
        await harness.tearDown()
    }
}

/// Every change the feed delivered, in delivery order.
final class ChangeLog: Sendable {
    private let changes = Mutex<[TaskRecord]>([])
    func append(_ task: TaskRecord) { changes.withLock { $0.append(task) } }
    var all: [TaskRecord] { changes.withLock { $0 } }
}

/// Waits up to two seconds for `condition` (feeds of shared backends arrive asynchronously).
func eventually(_ condition: () -> Bool) async throws {
    for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    #expect(condition())
}
