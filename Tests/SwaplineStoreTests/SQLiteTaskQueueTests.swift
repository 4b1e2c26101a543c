import Dispatch
import Foundation
import Synchronization
import SwaplineCore
import Testing

@testable import SwaplineStore

@Suite struct SQLiteTaskQueueTests {
    private func withDirectory(_ body: (TemporaryDirectory) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await body(directory)
    }

    private func openError(_ directory: TemporaryDirectory) -> TaskStoreOpenError? {
        do {
            _ = try SQLiteTaskQueue.open(in: directory)
            return nil
        } catch {
            return error
        }
    }

    private func pending(_ number: Int, key: String? = nil, padding: Int = 0) -> TaskRecord {
        var task = sampleRecord(number, complete: false)
        task.idempotencyKey = key
        if padding > 0 { task.params.options["padding"] = String(repeating: "x", count: padding) }
        return task
    }

    // MARK: - Group commit

    /// Holds the writer while `count` creates arrive, and reports how many transactions
    /// committed them all.
    private func transactionsFor(creates count: Int, groupCommit: Bool) async throws -> Int {
        var result = 0
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory, groupCommit: groupCommit)
            let releaseWriter = try await queue.holdWriter()
            let committed = Atomic<Int>(0)
            let allDone = DispatchSemaphore(value: 0)
            DispatchQueue.concurrentPerform(iterations: count) { number in
                queue.create(pending(number)) { outcome in
                    if case .success = outcome, committed.add(1, ordering: .relaxed).newValue == count { allDone.signal() }
                }
            }
            releaseWriter.signal()
            allDone.wait()
            result = queue.transactionCount
            #expect(try await queue.task(id: "task_\(count - 1)").get() != nil)
            await queue.close()
        }
        return result
    }

    @Test func operationsThatArriveTogetherShareOneTransaction() async throws {
        #expect(try await transactionsFor(creates: 100, groupCommit: true) == 1)
    }

    @Test func withoutGroupCommitEveryOperationIsItsOwnTransaction() async throws {
        #expect(try await transactionsFor(creates: 100, groupCommit: false) == 100)
    }

    // MARK: - Bad conditions

    @Test func aFullDiskRefusesChangesWithResourceExhaustedAndLosesNothingAcknowledged() async throws {
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory)
            var acknowledged: Set<String> = []
            try await queue.limitSize(toPages: Int(try await queue.pageCount()) + 8)
            var refused: (id: String, error: TaskError)?
            for number in 1...1_000 where refused == nil {
                switch await queue.create(pending(number, padding: 1_000)) {
                case .success: acknowledged.insert("task_\(number)")
                case .failure(let error): refused = ("task_\(number)", error)
                }
            }
            let refusal = try #require(refused)
            #expect(refusal.error.kind == .resourceExhausted)
            #expect(refusal.error.message.contains("out of space"))
            // The refused task was never stored, so no consumer can ever get it.
            var claimed: Set<String> = []
            while let grant = try await queue.claim(["face_swap"], consumer: "c1").get() { claimed.insert(grant.task.taskID) }
            #expect(claimed == acknowledged)
            #expect(try await queue.task(id: refusal.id).get() == nil)

            try await queue.limitSize(toPages: 1_000_000)
            #expect(try await queue.create(pending(5_000, padding: 1_000)).get().task.taskID == "task_5000")
            await queue.close()
        }
    }

    @Test func writesFailingOnAFullDiskMakeTheStoreUnreachableUntilAWriteSucceeds() async throws {
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory)
            #expect(queue.isReachable)
            try await queue.limitSize(toPages: Int(try await queue.pageCount()))
            #expect(await queue.create(pending(1, padding: 100_000)).error?.kind == .resourceExhausted)
            #expect(!queue.isReachable)
            // An empty transaction (the lease sweep's) commits, but proves nothing about space.
            _ = await queue.expireLeases(limit: 10)
            #expect(!queue.isReachable)
            try await queue.limitSize(toPages: 1_000_000)
            _ = try await queue.create(pending(2)).get()
            #expect(queue.isReachable)
            await queue.close()
        }
    }

    @Test func aLockHeldByAnotherProcessMakesTheStoreUnreachableUntilItIsReleased() async throws {
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory)
            // Another process's connection, as `sqlite3 tasks.db 'BEGIN EXCLUSIVE'` would hold it.
            let intruder = try SQLiteConnection(path: queue.databasePath)
            try intruder.execute("BEGIN EXCLUSIVE")
            // Fails after the busy timeout rather than at once or never.
            let started = ContinuousClock.now
            #expect(await queue.create(pending(1)).error?.kind == .unavailable)
            #expect(ContinuousClock.now - started >= .milliseconds(Int64(SQLiteConnection.busyTimeoutMs) - 100))
            #expect(!queue.isReachable)
            try intruder.execute("ROLLBACK")
            // Taking the write lock was what failed: an empty transaction is enough to recover.
            _ = await queue.expireLeases(limit: 10)
            #expect(queue.isReachable)
            await queue.close()
        }
    }

    /// A failed commit takes everything of its transaction with it: a create and a claim that
    /// leased it in the same batch both fail, and the task never runs.
    @Test func aCreateWhoseCommitFailsNeverRunsAndItsKeyStaysFree() async throws {
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory)
            try await queue.limitSize(toPages: Int(try await queue.pageCount()))
            let releaseWriter = try await queue.holdWriter()
            async let created = queue.create(pending(1, key: "k", padding: 100_000))
            async let retried = queue.create(pending(2, key: "k", padding: 100_000))
            async let claimed = queue.claim(["face_swap"], consumer: "c1")
            try await Task.sleep(for: .milliseconds(100))  // all three queue behind the held writer
            releaseWriter.signal()
            #expect(await created.error?.kind == .resourceExhausted)
            #expect(await retried.error?.kind == .resourceExhausted)
            #expect(await claimed.error?.kind == .resourceExhausted)

            try await queue.limitSize(toPages: 1_000_000)
            #expect(try await queue.claim(["face_swap"], consumer: "c1").get() == nil)
            #expect(try await queue.task(id: "task_1").get() == nil)
            #expect(try await queue.create(pending(3, key: "k")).get() == .created(pending(3, key: "k")))
            await queue.close()
        }
    }

    @Test func aSecondQueueOnTheSameDirectoryIsRefusedNamingIt() async throws {
        try await withDirectory { directory in
            let first = try SQLiteTaskQueue.open(in: directory)
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .inUse)
            #expect(refusal.description.contains(directory.path))
            #expect(refusal.description.contains("pid \(ProcessInfo.processInfo.processIdentifier)"))
            await first.close()
            await try SQLiteTaskQueue.open(in: directory).close()
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefusedAsCorrupt() async throws {
        try await withDirectory { directory in
            let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try garbage.write(to: URL(fileURLWithPath: directory.file(SQLiteTaskQueue.databaseFileName)))
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .corrupt)
            #expect(refusal.path == directory.file(SQLiteTaskQueue.databaseFileName))
        }
    }

    /// Damage inside the file is found by the explicit check (`swapline check`), which reads
    /// every page; a start does not, so it stays fast however large the database is.
    @Test func theIntegrityCheckFindsADamagedDatabase() async throws {
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory)
            for number in 1...300 { _ = try await queue.create(pending(number, padding: 200)).get() }
            await queue.close()
            #expect(try SQLiteTaskQueue.integrityProblems(directory: directory.path) == [])
            // Overwrite the middle of the file: table and index pages, not the header.
            let path = directory.file(SQLiteTaskQueue.databaseFileName)
            let file = try #require(FileHandle(forUpdatingAtPath: path))
            let size = try file.seekToEnd()
            try file.seek(toOffset: size / 3)
            try file.write(contentsOf: Data(repeating: 0xA5, count: Int(size / 3)))
            try file.close()
            let problems: [String]
            do {
                problems = try SQLiteTaskQueue.integrityProblems(directory: directory.path)
            } catch {
                problems = ["\(error)"]
            }
            #expect(!problems.isEmpty)
        }
    }

    @Test func anotherProgramsDatabaseIsRefusedAsForeign() async throws {
        try await withDirectory { directory in
            let path = directory.file(SQLiteTaskQueue.databaseFileName)
            try SQLiteConnection(path: path).execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .foreign)
            #expect(refusal.description.contains("not a Swapline task database"))
        }
    }

    @Test func aDatabaseFromANewerSwaplineIsRefused() async throws {
        try await withDirectory { directory in
            await try SQLiteTaskQueue.open(in: directory).close()
            let path = directory.file(SQLiteTaskQueue.databaseFileName)
            try SQLiteConnection(path: path).execute("PRAGMA user_version = 99")
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .newerSchema)
        }
    }

    @Test func theQuotaMigrationCountsTheTasksAlreadyQueued() async throws {
        try await withDirectory { directory in
            let queue = try SQLiteTaskQueue.open(in: directory)
            for number in 1...3 { _ = try await queue.create(pending(number)).get() }
            _ = try await queue.claim(["face_swap"], consumer: "c1").get()
            await queue.close()
            // Back to the schema before the quotas, as a database of an older Swapline.
            try SQLiteConnection(path: directory.file(SQLiteTaskQueue.databaseFileName)).execute(
                """
                DROP TRIGGER task_counts_on_insert; DROP TRIGGER task_counts_on_delete; DROP TRIGGER task_counts_on_update;
                DROP TABLE task_counts; DROP INDEX tasks_by_owner_state_and_creation; DROP INDEX tasks_by_state_and_creation;
                DROP INDEX tasks_finished_by_owner; ALTER TABLE tasks DROP COLUMN history;
                DROP TRIGGER queue_length_on_insert; DROP TRIGGER queue_length_on_delete; DROP TRIGGER queue_length_on_update;
                DROP TABLE queue_length; PRAGMA user_version = 3
                """)
            let migrated = try SQLiteTaskQueue.open(in: directory, rules: TaskRules(quotas: TaskQuotas(maxQueueLength: 3)))
            _ = try await migrated.create(pending(4)).get()
            guard case .failure(let refusal) = await migrated.create(pending(5)) else {
                Issue.record("the queue took a fourth PENDING task")
                return await migrated.close()
            }
            #expect(refusal.message.contains("queue is full"))
            // The listing migration counted the tasks already stored.
            let stats = try await migrated.stats(.everyone, since: 0).get()
            #expect(stats.counts == [
                TaskStoreStats.Key(workflow: "face_swap", state: .pending): 3, TaskStoreStats.Key(workflow: "face_swap", state: .processing): 1,
            ])
            await migrated.close()
        }
    }

    // MARK: - Cost that does not grow with the history

    @Test func everyQueryIsAnsweredFromAnIndexInOrder() async throws {
        try await withDirectory { directory in
            await try SQLiteTaskQueue.open(in: directory).close()
            let connection = try SQLiteConnection(path: directory.file(SQLiteTaskQueue.databaseFileName))
            let queries = SQLiteTaskReads.queries
            for query in [queries.byID, queries.byIdempotencyKey, queries.firstPending, queries.expiredLeases, queries.byStateAndAge,
                queries.openTasksOfOwner, queries.pageOfState, queries.pageOfOwnerAndState, queries.oldestPending,
                queries.oldestPendingOfOwner, queries.finishedSince, queries.finishedSinceOfOwner,
            ] {
                let plan = try connection.textColumnAt(3, "EXPLAIN QUERY PLAN \(query)").joined(separator: "; ")
                #expect(plan.contains("USING") && plan.contains("INDEX"), "\(query): \(plan)")
                #expect(!plan.contains("SCAN tasks") && !plan.contains("TEMP B-TREE"), "\(query): \(plan)")
            }
        }
    }

    // MARK: - Retention and file size

    @Test func purgedSpaceIsGivenBackToTheFileSystem() async throws {
        try await withDirectory { directory in
            let clock = SteppedClock()
            let queue = try SQLiteTaskQueue.open(in: directory, clock: clock)
            for number in 1...2_000 {
                _ = try await queue.create(pending(number, padding: 2_000)).get()
                _ = try await queue.cancel("task_\(number)").get()
            }
            let full = try await queue.pageCount()
            clock.advance(ms: 1)
            var purged = 0
            while case .success(let ids) = await queue.purgeFinished(before: clock.clock.nowMs(), limit: 250), !ids.isEmpty {
                purged += ids.count
            }
            #expect(purged == 2_000)
            #expect(try await queue.pageCount() < full / 2)
            await queue.close()
        }
    }
}

extension SQLiteTaskQueue {
    /// Blocks the writer until the returned semaphore is signalled: operations queue up
    /// behind it and are then taken as one batch.
    func holdWriter() async throws -> DispatchSemaphore {
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Task {
            try await onWriter { _ in
                held.signal()
                release.wait()
            }
        }
        await withCheckedContinuation { done in DispatchQueue.global().async { held.wait(); done.resume() } }
        return release
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
