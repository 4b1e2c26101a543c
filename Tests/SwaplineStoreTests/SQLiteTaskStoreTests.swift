import Dispatch
import Foundation
import Synchronization
import SwaplineCore
import Testing

@testable import SwaplineStore

@Suite struct SQLiteTaskStoreTests {
    private func withDirectory(_ body: (TemporaryDirectory) async throws -> Void) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await body(directory)
    }

    private func openError(_ directory: TemporaryDirectory) -> TaskStoreOpenError? {
        do {
            _ = try SQLiteTaskStore.open(in: directory)
            return nil
        } catch {
            return error
        }
    }

    // MARK: - Group commit

    /// Holds the writer inside the completion of a first write while `count` more arrive, and
    /// reports how many transactions committed them all.
    private func transactionsFor(writes count: Int, groupCommit: Bool) async throws -> Int {
        var result = 0
        try await withDirectory { directory in
            let store = try SQLiteTaskStore.open(in: directory, groupCommit: groupCommit)
            defer { store.close() }
            let writerHeld = DispatchSemaphore(value: 0)
            let releaseWriter = DispatchSemaphore(value: 0)
            store.write([sampleRecord(0)]) { _ in
                writerHeld.signal()
                releaseWriter.wait()
            }
            writerHeld.wait()
            let committed = Atomic<Int>(0)
            let allDone = DispatchSemaphore(value: 0)
            DispatchQueue.concurrentPerform(iterations: count) { number in
                store.write([sampleRecord(number + 1)]) { outcome in
                    if case .success = outcome, committed.add(1, ordering: .relaxed).newValue == count { allDone.signal() }
                }
            }
            releaseWriter.signal()
            allDone.wait()
            result = store.transactionCount
            #expect(try store.loadAll().count == count + 1)
        }
        return result
    }

    @Test func writesThatArriveTogetherShareOneTransaction() async throws {
        // The first write, then everything that queued behind it.
        #expect(try await transactionsFor(writes: 100, groupCommit: true) == 2)
    }

    @Test func withoutGroupCommitEveryWriteIsItsOwnTransaction() async throws {
        #expect(try await transactionsFor(writes: 100, groupCommit: false) == 101)
    }

    @Test func aRefusedWriteFailsAloneInItsBatch() async throws {
        try await withDirectory { directory in
            let store = try SQLiteTaskStore.open(in: directory)
            defer { store.close() }
            var clash = sampleRecord(2)
            clash.idempotencyKey = sampleRecord(1).idempotencyKey  // the unique index refuses it
            async let first = store.write([sampleRecord(1)])
            async let second = store.write([clash])
            async let third = store.write([sampleRecord(3)])
            let succeeded = await [first, second, third].map { (try? $0.get()) != nil }
            // The two clashing writes race: whichever the writer takes first wins, the other
            // fails alone, and the unrelated write in the same batch still commits.
            #expect(succeeded[2])
            #expect(succeeded[0] != succeeded[1])
            let winner = succeeded[0] ? "task_1" : "task_2"
            #expect(Set(try store.loadAll().map(\.taskID)) == [winner, "task_3"])
        }
    }

    // MARK: - Bad conditions

    @Test func aFullDiskFailsWritesWithResourceExhaustedUntilSpaceReturns() async throws {
        try await withDirectory { directory in
            let store = try SQLiteTaskStore.open(in: directory)
            defer { store.close() }
            let scheduler = try TaskScheduler(configuration: SchedulerConfiguration(), store: store)
            var acknowledged: Set<String> = [try await scheduler.create().get().taskID]
            try store.limitSize(toPages: 1)  // never below the current size: the file cannot grow
            let failure = await store.write((1...200).map { sampleRecord($0) })
            #expect(failure.error?.kind == .resourceExhausted)
            #expect(failure.error?.message.contains("out of space") == true)
            // Tasks still fit in the free space of the last pages, until they do not.
            var refusal: TaskError?
            while refusal == nil, acknowledged.count < 1_000 {
                switch await scheduler.create() {
                case .success(let task): acknowledged.insert(task.taskID)
                case .failure(let error): refusal = error
                }
            }
            #expect(refusal?.kind == .resourceExhausted)
            #expect(scheduler.counts()[.pending] == acknowledged.count)
            #expect(Set(try store.loadAll().map(\.taskID)) == acknowledged)

            try store.limitSize(toPages: 1_000_000)
            acknowledged.insert(try await scheduler.create().get().taskID)
            #expect(Set(try store.loadAll().map(\.taskID)) == acknowledged)
        }
    }

    @Test func aSecondStoreOnTheSameDirectoryIsRefusedNamingIt() async throws {
        try await withDirectory { directory in
            let first = try SQLiteTaskStore.open(in: directory)
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .inUse)
            #expect(refusal.description.contains(directory.path))
            #expect(refusal.description.contains("pid \(ProcessInfo.processInfo.processIdentifier)"))
            first.close()
            let second = try SQLiteTaskStore.open(in: directory)
            second.close()
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefusedAsCorrupt() async throws {
        try await withDirectory { directory in
            let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try garbage.write(to: URL(fileURLWithPath: directory.file(SQLiteTaskStore.databaseFileName)))
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .corrupt)
            #expect(refusal.path == directory.file(SQLiteTaskStore.databaseFileName))
        }
    }

    @Test func aDamagedDatabaseIsRefusedAsCorrupt() async throws {
        try await withDirectory { directory in
            let store = try SQLiteTaskStore.open(in: directory)
            try await store.write((1...300).map { sampleRecord($0) }).get()
            store.close()
            // Overwrite the middle of the file: table and index pages, not the header.
            let path = directory.file(SQLiteTaskStore.databaseFileName)
            let file = try #require(FileHandle(forUpdatingAtPath: path))
            let size = try file.seekToEnd()
            try file.seek(toOffset: size / 3)
            try file.write(contentsOf: Data(repeating: 0xA5, count: Int(size / 3)))
            try file.close()
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .corrupt)
            #expect(refusal.description.contains(path))
        }
    }

    @Test func anotherProgramsDatabaseIsRefusedAsForeign() async throws {
        try await withDirectory { directory in
            let path = directory.file(SQLiteTaskStore.databaseFileName)
            try SQLiteConnection(path: path).execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .foreign)
            #expect(refusal.description.contains("not a Swapline task database"))
        }
    }

    @Test func aDatabaseFromANewerSwaplineIsRefused() async throws {
        try await withDirectory { directory in
            try SQLiteTaskStore.open(in: directory).close()
            let path = directory.file(SQLiteTaskStore.databaseFileName)
            try SQLiteConnection(path: path).execute("PRAGMA user_version = 99")
            let refusal = try #require(openError(directory))
            #expect(refusal.kind == .newerSchema)
        }
    }

    // MARK: - Retention and file size

    @Test func purgedSpaceIsGivenBackToTheFileSystem() async throws {
        try await withDirectory { directory in
            let store = try SQLiteTaskStore.open(in: directory)
            defer { store.close() }
            let bulky = String(repeating: "x", count: 2_000)
            let records = (1...2_000).map { number in
                var record = sampleRecord(number)
                record.params.options["padding"] = bulky
                return record
            }
            try await store.write(records).get()
            let full = try store.pageCount()
            for batch in stride(from: 0, to: records.count, by: 250) {
                try await store.delete(records[batch..<batch + 250].map(\.taskID)).get()
            }
            #expect(try store.pageCount() < full / 2)
        }
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
