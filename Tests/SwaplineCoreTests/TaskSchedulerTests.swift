import Testing
@testable import SwaplineCore

@Suite struct TaskSchedulerTests {
    let time = ManualClock()

    func makeScheduler(store: any TaskStore = InMemoryTaskStore(), leaseMs: Int64 = 1_000, maxAttempts: Int32 = 3) throws -> TaskScheduler {
        var configuration = SchedulerConfiguration()
        configuration.leaseDurationMs = leaseMs
        configuration.maxAttempts = maxAttempts
        return try TaskScheduler(configuration: configuration, store: store, clock: time.clock)
    }

    @Test func createFillsDefaultsAndTheUnifiedFormat() throws {
        let scheduler = try makeScheduler()
        scheduler.setOrigin(TaskOrigin(sourceChannel: "http://127.0.0.1:9", targetPort: 9))
        let task = try scheduler.create().get()
        #expect(task.taskID.hasPrefix("task_") && task.taskID.count == 31)
        #expect(task.workflow == "face_swap" && task.environment == "face_swap")
        #expect(task.params.model == "inswapper_128_fp16" && task.params.resolution == "1024x1024")
        #expect(task.state == .pending && task.attempt == 0)
        #expect(task.sourceChannel == "http://127.0.0.1:9" && task.targetPort == 9)
        #expect(scheduler.task(id: task.taskID) == task)
    }

    @Test func taskIDsSortInCreationOrder() throws {
        let scheduler = try makeScheduler()
        var ids: [String] = []
        for step in 0..<50 {
            if step % 10 == 0 { time.advance(ms: 1) }
            ids.append(try scheduler.create().get().taskID)
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
    }

    @Test func rejectsBadInputNamingTheField() throws {
        let scheduler = try makeScheduler()
        func problem(_ params: FaceSwapParameters, workflow: String = "") -> String? {
            scheduler.create(CreateTaskCommand(workflow: workflow, params: params)).error?.message
        }
        var params = sampleParams
        params.sourceURL = ""
        #expect(problem(params)?.contains("source_url") == true)
        params = sampleParams
        params.targetURL = "ftp://example.com/x"
        #expect(problem(params)?.contains("target_url") == true)
        params = sampleParams
        params.model = "nope"
        #expect(problem(params)?.contains("model") == true)
        params = sampleParams
        params.resolution = "2048x2048"
        #expect(problem(params)?.contains("resolution") == true)
        #expect(problem(sampleParams, workflow: "other")?.contains("workflow") == true)
    }

    @Test func sameIdempotencyKeyGivesTheSameTask() throws {
        let scheduler = try makeScheduler()
        let first = try scheduler.create(CreateTaskCommand(params: sampleParams, idempotencyKey: "k")).get()
        let second = try scheduler.create(CreateTaskCommand(params: sampleParams, idempotencyKey: "k")).get()
        let other = try scheduler.create(CreateTaskCommand(params: sampleParams, idempotencyKey: "j")).get()
        #expect(first.taskID == second.taskID)
        #expect(other.taskID != first.taskID)
    }

    @Test func fetchTakesHighestPriorityThenOldest() throws {
        let scheduler = try makeScheduler()
        let old = try scheduler.create().get()
        time.advance(ms: 5)
        let urgent = try scheduler.create(CreateTaskCommand(params: sampleParams, priority: 5)).get()
        time.advance(ms: 5)
        let young = try scheduler.create().get()
        #expect(scheduler.fetch()?.task.taskID == urgent.taskID)
        #expect(scheduler.fetch()?.task.taskID == old.taskID)
        let grant = scheduler.fetch()
        #expect(grant?.task.taskID == young.taskID)
        #expect(grant?.task.state == .processing && grant?.task.attempt == 1)
        #expect(scheduler.fetch() == nil)
        #expect(scheduler.fetch(["other"]) == nil)
    }

    @Test func parkedFetchesAreServedFirstComeFirstServed() throws {
        let scheduler = try makeScheduler()
        let first = Collected<Result<LeaseGrant?, TaskError>>()
        let second = Collected<Result<LeaseGrant?, TaskError>>()
        #expect(scheduler.fetchTask(consumerID: "a", workflows: [], waitMs: 1000) { first.append($0) } != nil)
        #expect(scheduler.fetchTask(consumerID: "b", workflows: ["face_swap"], waitMs: 1000) { second.append($0) } != nil)
        let task = try scheduler.create().get()
        #expect(try first.last?.get()?.task.taskID == task.taskID)
        #expect(second.all.isEmpty)
        let next = try scheduler.create().get()
        #expect(try second.last?.get()?.task.taskID == next.taskID)
    }

    @Test func withdrawnWaitIsNotServed() throws {
        let scheduler = try makeScheduler()
        let waiting = Collected<Result<LeaseGrant?, TaskError>>()
        let token = try #require(scheduler.fetchTask(consumerID: "a", workflows: [], waitMs: 1000) { waiting.append($0) })
        #expect(scheduler.cancelWait(token))
        #expect(!scheduler.cancelWait(token))
        _ = try scheduler.create().get()
        #expect(waiting.all.isEmpty)
        #expect(scheduler.fetch() != nil)
    }

    @Test func undeliveredLeaseGoesBackWithoutCountingAnAttempt() throws {
        let scheduler = try makeScheduler()
        let task = try scheduler.create().get()
        let grant = try #require(scheduler.fetch())
        scheduler.returnUndelivered(grant)
        #expect(scheduler.task(id: task.taskID)?.state == .pending)
        let again = try #require(scheduler.fetch())
        #expect(again.task.attempt == 1)
        #expect(again.lease.id != grant.lease.id)
    }

    @Test func updatesNeedTheCurrentLease() throws {
        let scheduler = try makeScheduler()
        let task = try scheduler.create().get()
        let grant = try #require(scheduler.fetch())
        #expect(scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: "wrong", state: .processing)).error?.kind == .failedPrecondition)
        #expect(scheduler.update(StatusUpdate(taskID: "task_missing", leaseID: grant.lease.id, state: .processing)).error?.kind == .notFound)
        #expect(scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: nil)).error?.kind == .invalidArgument)
        #expect(scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing, progress: 2)).error?.kind == .invalidArgument)
        #expect(scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .completed)).error?.kind == .invalidArgument)
    }

    @Test func progressExtendsTheLeaseAndCompletionIsFinal() throws {
        let scheduler = try makeScheduler(leaseMs: 1_000)
        let task = try scheduler.create().get()
        let grant = try #require(scheduler.fetch())
        time.advance(ms: 800)
        let progressed = try scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing, progress: 0.5)).get()
        #expect(progressed.progress == 0.5)
        time.advance(ms: 800)
        scheduler.expireLeases()
        #expect(scheduler.task(id: task.taskID)?.state == .processing)
        let done = try scheduler.update(
            StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .completed, output: TaskOutput(outputURL: "http://x/r.jpg"))
        ).get()
        #expect(done.state == .completed && done.progress == 1 && done.output?.outputURL == "http://x/r.jpg")
        let after = scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .failed, error: "late"))
        #expect(after.error?.kind == .failedPrecondition)
        #expect(scheduler.cancel(task.taskID).map(\.state) == .success(.completed))
    }

    @Test func expiredLeasesRequeueThenFailAfterMaxAttempts() throws {
        let scheduler = try makeScheduler(leaseMs: 100, maxAttempts: 2)
        let task = try scheduler.create().get()
        #expect(scheduler.fetch()?.task.attempt == 1)
        time.advance(ms: 101)
        scheduler.expireLeases()
        #expect(scheduler.task(id: task.taskID)?.state == .pending)
        let second = try #require(scheduler.fetch())
        #expect(second.task.attempt == 2)
        time.advance(ms: 101)
        scheduler.expireLeases()
        let failed = try #require(scheduler.task(id: task.taskID))
        #expect(failed.state == .failed)
        #expect(failed.error.contains("lease expired") && failed.error.contains("2 of 2"))
        #expect(scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: second.lease.id, state: .processing)).error?.kind == .failedPrecondition)
    }

    @Test func cancelledTaskAbortsItsWorker() throws {
        let scheduler = try makeScheduler()
        let task = try scheduler.create().get()
        let grant = try #require(scheduler.fetch())
        #expect(try scheduler.cancel(task.taskID).get().state == .cancelled)
        #expect(scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing)).error?.kind == .aborted)
        #expect(scheduler.cancel("task_nope").error?.kind == .notFound)
    }

    @Test func watchersSeeEveryCommittedChangeInOrder() throws {
        let scheduler = try makeScheduler()
        let task = try scheduler.create().get()
        let seen = Collected<TaskRecord>()
        let (current, token) = try scheduler.watch(taskID: task.taskID) { seen.append($0) }.get()
        #expect(current.version == task.version)
        let grant = try #require(scheduler.fetch())
        _ = scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing, progress: 0.3))
        _ = scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .failed, error: "boom"))
        #expect(seen.all.map(\.state) == [.processing, .processing, .failed])
        #expect(seen.all.map(\.version) == [task.version + 1, task.version + 2, task.version + 3])
        scheduler.unwatch(taskID: task.taskID, token: token)
        #expect(scheduler.watch(taskID: "task_nope") { _ in }.error?.kind == .notFound)
    }

    @Test func failedCommitIsUndoneAndReported() throws {
        let store = FailingStore()
        let scheduler = try makeScheduler(store: store)
        let task = try scheduler.create().get()
        store.setFailing(true)
        #expect(scheduler.create().error?.kind == .resourceExhausted)
        let refused = Collected<Result<LeaseGrant?, TaskError>>()
        scheduler.fetchTask(consumerID: "c", workflows: [], waitMs: 0) { refused.append($0) }
        #expect(refused.last?.error?.kind == .resourceExhausted)
        #expect(scheduler.task(id: task.taskID)?.state == .pending)
        #expect(scheduler.counts()[.pending] == 1)
        store.setFailing(false)
        #expect(scheduler.fetch()?.task.taskID == task.taskID)
    }

    @Test func restartRebuildsQueueAndLeasesFromTheStore() throws {
        let store = InMemoryTaskStore()
        let first = try makeScheduler(store: store, leaseMs: 100)
        let queued = try first.create().get()
        time.advance(ms: 1)
        let leased = try first.create().get()
        _ = try #require(first.fetch())  // leases `queued` (oldest)
        let restarted = try makeScheduler(store: store, leaseMs: 100)
        #expect(restarted.fetch()?.task.taskID == leased.taskID)
        time.advance(ms: 101)
        restarted.expireLeases()
        let redelivered = try #require(restarted.fetch())
        #expect(redelivered.task.taskID == queued.taskID && redelivered.task.attempt == 2)
    }

    @Test func sameKeyWhileTheFirstCreationIsUncommittedWaitsForItsOutcome() throws {
        let store = HeldStore()
        let scheduler = try makeScheduler(store: store)
        let first = Collected<Result<TaskRecord, TaskError>>()
        let second = Collected<Result<TaskRecord, TaskError>>()
        let command = CreateTaskCommand(params: sampleParams, idempotencyKey: "k")
        scheduler.createTask(command) { first.append($0) }
        scheduler.createTask(command) { second.append($0) }
        #expect(first.all.isEmpty && second.all.isEmpty)
        store.release(.failure(TaskStoreError(.resourceExhausted, "disk full")))
        #expect(first.last?.error?.kind == .resourceExhausted && second.last?.error?.kind == .resourceExhausted)

        scheduler.createTask(command) { first.append($0) }
        scheduler.createTask(command) { second.append($0) }
        store.release(.success(()))
        let created = try #require(try first.last?.get())
        #expect(try second.last?.get() == created)
        #expect(try store.loadAll().map(\.taskID) == [created.taskID])
    }

    @Test func purgeForgetsFinishedTasksPastTheirAgeOldestFirst() throws {
        let store = InMemoryTaskStore()
        let scheduler = try makeScheduler(store: store)
        func finish(key: String) throws -> TaskRecord {
            let task = try scheduler.create(CreateTaskCommand(params: sampleParams, idempotencyKey: key)).get()
            return try scheduler.cancel(task.taskID).get()
        }
        let oldest = try finish(key: "a")
        time.advance(ms: 10)
        let older = try finish(key: "b")
        time.advance(ms: 10)
        let recent = try finish(key: "c")
        let running = try scheduler.create().get()
        time.advance(ms: 5)  // cutoff 10 ms ago: between `older` and `recent`

        let purged = Collected<Result<Int, TaskError>>()
        scheduler.purgeFinishedTasks(olderThanMs: 10, limit: 1) { purged.append($0) }
        #expect(try purged.last?.get() == 1)
        #expect(scheduler.task(id: oldest.taskID) == nil && scheduler.task(id: older.taskID) != nil)
        scheduler.purgeFinishedTasks(olderThanMs: 10, limit: 10) { purged.append($0) }
        #expect(try purged.last?.get() == 1)
        #expect(scheduler.task(id: older.taskID) == nil)
        #expect(scheduler.task(id: recent.taskID) != nil && scheduler.task(id: running.taskID) != nil)
        #expect(Set(try store.loadAll().map(\.taskID)) == [recent.taskID, running.taskID])
        // The key of a purged task is free again.
        let reused = try scheduler.create(CreateTaskCommand(params: sampleParams, idempotencyKey: "a")).get()
        #expect(reused.taskID != oldest.taskID)
    }

    @Test func aFailedPurgeKeepsTheTasksForTheNextOne() throws {
        let store = FailingStore()
        let scheduler = try makeScheduler(store: store)
        let task = try scheduler.cancel(scheduler.create().get().taskID).get()
        time.advance(ms: 100)
        store.setFailing(true)
        let purged = Collected<Result<Int, TaskError>>()
        scheduler.purgeFinishedTasks(olderThanMs: 50, limit: 10) { purged.append($0) }
        #expect(purged.last?.error?.kind == .unavailable)
        #expect(scheduler.task(id: task.taskID) != nil)
        store.setFailing(false)
        scheduler.purgeFinishedTasks(olderThanMs: 50, limit: 10) { purged.append($0) }
        #expect(try purged.last?.get() == 1)
        #expect(scheduler.task(id: task.taskID) == nil)
    }
}
