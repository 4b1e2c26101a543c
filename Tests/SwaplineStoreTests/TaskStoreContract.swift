import Foundation
import SwaplineCore
import SwaplineStore
import Testing

/// The kinds of store the contract runs against. A new store (PostgreSQL) adds a case and a
/// harness, and passes the same tests.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory
    case sqlite

    var testDescription: String { rawValue }

    func makeHarness() throws -> any StoreHarness {
        switch self {
        case .inMemory: return InMemoryHarness()
        case .sqlite: return try SQLiteHarness()
        }
    }
}

/// Opens a store on fresh storage and reopens it the way a restarted server would.
protocol StoreHarness {
    var store: any TaskStore { get }
    /// Closes the store and opens it again on the same storage.
    mutating func reopen() throws
    /// Closes the store and deletes its storage.
    func tearDown()
}

/// Keeps its records for the life of the process, so "reopening" keeps the same instance.
struct InMemoryHarness: StoreHarness {
    let store: any TaskStore = InMemoryTaskStore()
    mutating func reopen() {}
    func tearDown() {}
}

struct SQLiteHarness: StoreHarness {
    private let directory: TemporaryDirectory
    private var sqlite: SQLiteTaskStore
    var store: any TaskStore { sqlite }

    init() throws {
        directory = try TemporaryDirectory()
        sqlite = try SQLiteTaskStore.open(in: directory)
    }

    mutating func reopen() throws {
        sqlite.close()
        sqlite = try SQLiteTaskStore.open(in: directory)
    }

    func tearDown() {
        sqlite.close()
        directory.remove()
    }
}

@Suite struct TaskStoreContract {
    private func withHarness(_ kind: StoreKind, _ body: (inout any StoreHarness) async throws -> Void) async throws {
        var harness = try kind.makeHarness()
        defer { harness.tearDown() }
        try await body(&harness)
    }

    @Test(arguments: StoreKind.allCases)
    func everyFieldSurvivesAReopen(kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let records = [sampleRecord(1), sampleRecord(2, complete: false)]
            try await harness.store.write(records).get()
            try harness.reopen()
            let loaded = try harness.store.loadByID()
            #expect(loaded.count == 2)
            #expect(loaded["task_1"] == records[0])
            #expect(loaded["task_2"] == records[1])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aNewerVersionReplacesAndAnOlderOneIsIgnored(kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            var newer = sampleRecord(1, version: 3)
            newer.state = .completed
            newer.lease = nil
            try await harness.store.write([sampleRecord(1, version: 1)]).get()
            try await harness.store.write([newer]).get()
            // Written late, e.g. by a thread that lost a race to the store.
            try await harness.store.write([sampleRecord(1, version: 2)]).get()
            try harness.reopen()
            #expect(try harness.store.loadAll() == [newer])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deletedTasksAreGoneAndUnknownIDsAreFine(kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            try await harness.store.write((1...3).map { sampleRecord($0) }).get()
            try await harness.store.delete(["task_1", "task_3", "task_unknown"]).get()
            try harness.reopen()
            #expect(try harness.store.loadAll().map(\.taskID) == ["task_2"])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentWritesAllCompleteOnceAndAllLand(kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let committed = await withTaskGroup(of: String?.self) { group in
                for number in 1...200 {
                    group.addTask {
                        let outcome = await store.write([sampleRecord(number)])
                        return (try? outcome.get()).map { "task_\(number)" }
                    }
                }
                return await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
            }
            #expect(committed.count == 200 && Set(committed).count == 200)
            try harness.reopen()
            #expect(try harness.store.loadAll().count == 200)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aRestartedSchedulerKeepsQueueLeasesAndIdempotencyKeys(kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let time = SteppedClock()
            var configuration = SchedulerConfiguration()
            configuration.leaseDurationMs = 1_000
            let first = try TaskScheduler(configuration: configuration, store: harness.store, clock: time.clock)
            let leased = try await first.create(key: "order-1").get()
            time.advance(ms: 1)
            let queued = try await first.create().get()
            let grant = try #require(try await first.fetch().get())
            #expect(grant.task.taskID == leased.taskID)

            try harness.reopen()
            let restarted = try TaskScheduler(configuration: configuration, store: harness.store, clock: time.clock)
            #expect(try await restarted.create(key: "order-1").get().taskID == leased.taskID)
            #expect(try await restarted.fetch().get()?.task.taskID == queued.taskID)
            // The lease runs out while "the server was down": redelivered as attempt 2.
            time.advance(ms: 1_001)
            restarted.expireLeases()
            let redelivered = try #require(try await restarted.fetch().get())
            #expect(redelivered.task.taskID == leased.taskID && redelivered.task.attempt == 2)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func purgedTasksDoNotComeBack(kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let time = SteppedClock()
            let scheduler = try TaskScheduler(configuration: SchedulerConfiguration(), store: harness.store, clock: time.clock)
            let finished = try await scheduler.create(key: "done").get()
            let grant = try #require(try await scheduler.fetch().get())
            let output = TaskOutput(outputURL: "https://cdn.example.com/r.jpg")
            _ = try await scheduler.update(
                StatusUpdate(taskID: finished.taskID, leaseID: grant.lease.id, state: .completed, output: output)
            ).get()
            let open = try await scheduler.create().get()
            time.advance(ms: 60_000)
            #expect(try await scheduler.purge(olderThanMs: 30_000, limit: 100).get() == 1)
            try harness.reopen()
            #expect(try harness.store.loadAll().map(\.taskID) == [open.taskID])
        }
    }
}
