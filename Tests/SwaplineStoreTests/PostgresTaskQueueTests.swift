import Foundation
import SwaplineCore
import SwaplinePostgres
@testable import SwaplineStore
import Testing

/// What only a shared backend does: several servers (here, several queues) on one database.
@Suite(.enabled(if: PostgresTestDatabase.isAvailable, "needs SWAPLINE_TEST_POSTGRES_URL (tools/test.sh starts a cluster)"))
struct PostgresTaskQueueTests {
    let clock = SteppedClock()
    let rules = TaskRules(leaseDurationMs: 1_000, maxAttempts: 3)

    /// `count` queues on one fresh database, opened concurrently as servers starting together.
    private func withServers(_ count: Int, _ body: ([PostgresTaskQueue], PostgresStoreLocation) async throws -> Void) async throws {
        let location = try await PostgresTestDatabase.create()
        let queues = try await withThrowingTaskGroup(of: PostgresTaskQueue.self) { [rules, clock] group in
            for _ in 0..<count { group.addTask { try await PostgresTaskQueue.open(location, rules: rules, clock: clock) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        do {
            try await body(queues, location)
        } catch {
            for queue in queues { await queue.close() }
            await PostgresTestDatabase.drop(location)
            throw error
        }
        for queue in queues { await queue.close() }
        await PostgresTestDatabase.drop(location)
    }

    private func pending(_ number: Int) -> TaskRecord {
        var task = sampleRecord(number, complete: false)
        task.createdAtMs = clock.clock.nowMs() + Int64(number)
        task.updatedAtMs = task.createdAtMs
        return task
    }

    @Test func serversStartingTogetherMigrateOnce() async throws {
        try await withServers(4) { _, location in
            // One row per schema version, each applied once however many servers started.
            let migrations = try await PostgresTestDatabase.integer("SELECT count(*) FROM swapline_schema_migrations", in: location)
            let versions = try await PostgresTestDatabase.integer(
                "SELECT count(DISTINCT version) FROM swapline_schema_migrations", in: location)
            #expect(migrations == 4 && versions == 4)
        }
    }

    @Test func theSweepFoldsTheCountChanges() async throws {
        try await withServers(1) { queues, location in
            let queue = queues[0]
            for number in 1...5 { _ = try await queue.create(pending(number)).get() }
            _ = try await queue.claim(["face_swap"], consumer: "c1").get()
            let changes = "SELECT count(*) FROM swapline_task_count_changes"
            #expect(try await PostgresTestDatabase.integer(changes, in: location) == 7)  // five +1, then -1 and +1
            _ = try await queue.expireLeases(limit: 10).get()
            #expect(try await PostgresTestDatabase.integer(changes, in: location) == 2)  // one row per workflow and state
            #expect(try await queue.stats(.everyone, since: 0).get().counts == [
                TaskStoreStats.Key(workflow: "face_swap", state: .pending): 4, TaskStoreStats.Key(workflow: "face_swap", state: .processing): 1,
            ])
        }
    }

    @Test func aChangeThroughOneServerReachesTheOthersFeedInOrder() async throws {
        try await withServers(2) { queues, _ in
            let changes = ChangeLog()
            queues[1].setChangeHandler { changes.append($0) }
            _ = try await queues[0].create(pending(1)).get()
            let grant = try #require(try await queues[0].claim(["face_swap"], consumer: "c1").get())
            for step in 1...3 {
                _ = try await queues[0].update(StatusUpdate(taskID: "task_1", leaseID: grant.lease.id, state: .processing, progress: Float(step) / 4)).get()
            }
            try await eventually { changes.all.count == 5 }
            #expect(changes.all.map(\.version) == Array(1...5))
            let stored = try await queues[1].task(id: "task_1").get()
            #expect(changes.all.last == stored)
        }
    }

    @Test func claimsFromManyServersNeverShareATask() async throws {
        try await withServers(3) { queues, _ in
            for number in 1...150 { _ = try await queues[number % 3].create(pending(number)).get() }
            let grants = await withTaskGroup(of: String?.self) { group in
                for claimer in 0..<240 {
                    let queue = queues[claimer % 3]
                    group.addTask { try? await queue.claim(["face_swap"], consumer: "c\(claimer)").get()?.task.taskID }
                }
                return await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(grants.count == 150)
            #expect(Set(grants).count == 150)
        }
    }

    @Test func leaseExpiryOnEveryServerAtOnceExpiresEachLeaseOnce() async throws {
        try await withServers(3) { queues, location in
            for number in 1...60 { _ = try await queues[0].create(pending(number)).get() }
            for _ in 1...60 { _ = try await queues[1].claim(["face_swap"], consumer: "c").get() }
            clock.advance(ms: 1_000)
            let expired = await withTaskGroup(of: Int.self) { group in
                for queue in queues {
                    group.addTask { (try? await queue.expireLeases(limit: 25).get()) ?? 0 }
                    group.addTask { (try? await queue.expireLeases(limit: 25).get()) ?? 0 }
                }
                return await group.reduce(0, +)
            }
            #expect(expired == 60)
            let requeued = try await PostgresTestDatabase.integer(
                "SELECT count(*) FROM swapline_tasks WHERE state = 'PENDING' AND attempt = 1 AND version = 3", in: location)
            #expect(requeued == 60)
        }
    }

    @Test func anIdempotencyKeyNamesOneTaskAcrossServers() async throws {
        try await withServers(2) { queues, _ in
            var first = pending(1)
            first.idempotencyKey = "order-1"
            var second = pending(2)
            second.idempotencyKey = "order-1"
            async let a = queues[0].create(first)
            async let b = queues[1].create(second)
            let outcomes = [try await a.get(), try await b.get()]
            #expect(Set(outcomes.map(\.task.taskID)).count == 1)
            #expect(outcomes.filter { if case .created = $0 { true } else { false } }.count == 1)
        }
    }

    @Test func aTaskTooLargeForANotificationStillReachesTheFeed() async throws {
        try await withServers(1) { queues, _ in
            let changes = ChangeLog()
            queues[0].setChangeHandler { changes.append($0) }
            var task = pending(1)
            task.params.options = ["note": String(repeating: "x", count: 9_000)]
            _ = try await queues[0].create(task).get()
            try await eventually { changes.all.count == 1 }
            #expect(changes.all == [task])
        }
    }

    @Test func aNewerSchemaIsRefused() async throws {
        let location = try await PostgresTestDatabase.create()
        await (try await PostgresTaskQueue.open(location)).close()
        _ = try await PostgresTestDatabase.integer("INSERT INTO swapline_schema_migrations (version) VALUES (99) RETURNING version::bigint", in: location)
        await #expect {
            _ = try await PostgresTaskQueue.open(location)
        } throws: { error in
            (error as? TaskStoreOpenError)?.kind == .newerSchema && "\(error)".contains("99")
        }
        await PostgresTestDatabase.drop(location)
    }

    @Test func anUnreachableDatabaseIsRefusedAtStartWithTheReason() async throws {
        var location = try await PostgresTestDatabase.create()
        await PostgresTestDatabase.drop(location)
        location.database = "swapline_no_such_database"
        await #expect {
            _ = try await PostgresTaskQueue.open(location)
        } throws: { error in
            (error as? TaskStoreOpenError)?.kind == .inaccessible && "\(error)".contains("swapline_no_such_database")
        }
    }
}
