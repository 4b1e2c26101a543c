import Testing
@testable import SwaplineCore

@Suite struct TaskSchedulerTests {
    let time = ManualClock()

    func makeScheduler(leaseMs: Int64 = 1_000, maxAttempts: Int32 = 3) throws -> TaskScheduler {
        try makeScheduler(queue: nil, leaseMs: leaseMs, maxAttempts: maxAttempts)
    }

    func makeScheduler(queue: (any TaskQueue)?, leaseMs: Int64 = 1_000, maxAttempts: Int32 = 3) throws -> TaskScheduler {
        var configuration = SchedulerConfiguration()
        configuration.leaseDurationMs = leaseMs
        configuration.maxAttempts = maxAttempts
        let queue = queue ?? InMemoryTaskQueue(rules: TaskRules(configuration), clock: time.clock)
        return TaskScheduler(configuration: configuration, queue: queue, clock: time.clock)
    }

    func makeControlledScheduler() throws -> (TaskScheduler, ControlledQueue) {
        let queue = ControlledQueue(rules: TaskRules(leaseDurationMs: 1_000, maxAttempts: 3), clock: time.clock)
        return (try makeScheduler(queue: queue), queue)
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
        #expect(scheduler.get(task.taskID) == task)
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
        #expect(scheduler.get(task.taskID)?.state == .pending)
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
        #expect(scheduler.get(task.taskID)?.state == .processing)
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
        #expect(scheduler.get(task.taskID)?.state == .pending)
        let second = try #require(scheduler.fetch())
        #expect(second.task.attempt == 2)
        time.advance(ms: 101)
        scheduler.expireLeases()
        let failed = try #require(scheduler.get(task.taskID))
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

    @Test func queueWatchersHearOfEveryChangeOfAnyTaskUntilTheyUnwatch() throws {
        let scheduler = try makeScheduler()
        let heard = Collected<Int>()
        let token = scheduler.watchQueue { heard.append(1) }
        let first = try scheduler.create().get()
        _ = try scheduler.create().get()
        #expect(heard.all.count == 2)
        _ = try #require(scheduler.fetch())
        _ = try scheduler.cancel(first.taskID).get()
        #expect(heard.all.count == 4)
        scheduler.unwatchQueue(token: token)
        _ = try scheduler.create().get()
        #expect(heard.all.count == 4)
    }

    @Test func watchersSeeEveryCommittedChangeInOrder() throws {
        let scheduler = try makeScheduler()
        let task = try scheduler.create().get()
        let seen = Collected<TaskRecord>()
        let current = Collected<Result<TaskRecord, TaskError>>()
        let token = scheduler.watch(taskID: task.taskID, onChange: { seen.append($0) }, current: { current.append($0) })
        #expect(try current.last?.get().version == task.version)
        let grant = try #require(scheduler.fetch())
        _ = scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing, progress: 0.3))
        _ = scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .failed, error: "boom"))
        #expect(seen.all.map(\.state) == [.processing, .processing, .failed])
        #expect(seen.all.map(\.version) == [task.version + 1, task.version + 2, task.version + 3])
        scheduler.unwatch(taskID: task.taskID, token: token)
        _ = scheduler.update(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing))
        #expect(seen.all.count == 3)
        let missing = Collected<Result<TaskRecord, TaskError>>()
        scheduler.watch(taskID: "task_nope", onChange: { _ in }, current: { missing.append($0) })
        #expect(missing.last?.error?.kind == .notFound)
    }

    @Test func purgeForgetsFinishedTasksPastTheirAgeOldestFirst() throws {
        let scheduler = try makeScheduler()
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

        let purged = Collected<Result<[TaskRecord], TaskError>>()
        scheduler.purgeFinishedTasks(olderThanMs: 10, limit: 1) { purged.append($0) }
        #expect(try purged.last?.get().map(\.taskID) == [oldest.taskID])
        #expect(scheduler.get(oldest.taskID) == nil && scheduler.get(older.taskID) != nil)
        scheduler.purgeFinishedTasks(olderThanMs: 10, limit: 10) { purged.append($0) }
        #expect(try purged.last?.get().map(\.taskID) == [older.taskID])
        #expect(scheduler.get(older.taskID) == nil)
        #expect(scheduler.get(recent.taskID) != nil && scheduler.get(running.taskID) != nil)
        // The key of a purged task is free again.
        let reused = try scheduler.create(CreateTaskCommand(params: sampleParams, idempotencyKey: "a")).get()
        #expect(reused.taskID != oldest.taskID)
    }

    // MARK: - Waiting consumers and a queue shared with other servers

    @Test func aWaitWithdrawnWhileItsClaimRunsHandsTheTaskBack() throws {
        let (scheduler, queue) = try makeControlledScheduler()
        let task = try scheduler.create().get()
        queue.holdClaimAnswers()
        let waiting = Collected<Result<LeaseGrant?, TaskError>>()
        let token = try #require(scheduler.fetchTask(consumerID: "a", workflows: [], waitMs: 1000) { waiting.append($0) })
        #expect(scheduler.cancelWait(token))
        queue.releaseClaimAnswers()
        #expect(waiting.all.isEmpty)
        let returned = try #require(scheduler.get(task.taskID))
        #expect(returned.state == .pending && returned.attempt == 0)
        #expect(!scheduler.cancelWait(token))
    }

    @Test func aTaskThatArrivesWhileAnEmptyClaimRunsIsNotMissed() throws {
        let (scheduler, queue) = try makeControlledScheduler()
        queue.holdClaimAnswers()
        let waiting = Collected<Result<LeaseGrant?, TaskError>>()
        scheduler.fetchTask(consumerID: "a", workflows: [], waitMs: 1000) { waiting.append($0) }
        // The claim found nothing, but its answer is not back yet when the task arrives, so
        // the change feed finds no idle waiter to wake.
        let task = try scheduler.create().get()
        queue.releaseClaimAnswers()
        #expect(try waiting.last?.get()?.task.taskID == task.taskID)
    }

    @Test func anUnreachableQueueFailsTheFetch() throws {
        let (scheduler, queue) = try makeControlledScheduler()
        queue.setUnreachable(true)
        let waiting = Collected<Result<LeaseGrant?, TaskError>>()
        scheduler.fetchTask(consumerID: "a", workflows: [], waitMs: 1000) { waiting.append($0) }
        #expect(waiting.last?.error?.kind == .unavailable)
        #expect(scheduler.create().error?.kind == .unavailable)
    }

    @Test func aRecheckRecoversChangesTheFeedMissed() throws {
        let (scheduler, queue) = try makeControlledScheduler()
        let watched = try scheduler.create().get()
        let seen = Collected<TaskRecord>()
        scheduler.watch(taskID: watched.taskID, onChange: { seen.append($0) }, current: { _ in })
        let grant = try #require(scheduler.fetch())
        let waiting = Collected<Result<LeaseGrant?, TaskError>>()
        scheduler.fetchTask(consumerID: "b", workflows: [], waitMs: 1000) { waiting.append($0) }
        queue.setDropChanges(true)
        _ = scheduler.update(StatusUpdate(taskID: watched.taskID, leaseID: grant.lease.id, state: .processing, progress: 0.5))
        let next = try scheduler.create().get()
        #expect(waiting.all.isEmpty && seen.all.last?.progress != 0.5)
        scheduler.recheck()
        #expect(try waiting.last?.get()?.task.taskID == next.taskID)
        #expect(seen.all.last?.progress == 0.5)
    }
}
