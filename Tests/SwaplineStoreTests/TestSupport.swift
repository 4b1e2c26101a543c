import Foundation
import Synchronization
import SwaplineCore
@testable import SwaplineStore

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("swapline-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A clock the test moves by hand.
final class SteppedClock: Sendable {
    private let now = Mutex<Int64>(1_700_000_000_000)
    var clock: WallClock { WallClock { [self] in now.withLock { $0 } } }
    func advance(ms: Int64) { now.withLock { $0 += ms } }
}

extension SQLiteTaskQueue {
    static func open(
        in directory: TemporaryDirectory, rules: TaskRules = TaskRules(), clock: SteppedClock = SteppedClock(),
        groupCommit: Bool = true
    ) throws(TaskStoreOpenError) -> SQLiteTaskQueue {
        var configuration = Configuration(directory: directory.path)
        configuration.groupCommit = groupCommit
        return try SQLiteTaskQueue(configuration: configuration, rules: rules, clock: clock.clock)
    }
}

/// The queue's operations as `async` functions: backends with a disk answer on their own thread.
extension TaskQueue {
    func create(_ task: TaskRecord) async -> Result<CreateOutcome, TaskError> {
        await withCheckedContinuation { done in create(task) { done.resume(returning: $0) } }
    }

    func claim(_ workflows: Set<String>, consumer: String) async -> Result<LeaseGrant?, TaskError> {
        await withCheckedContinuation { done in claim(workflows: workflows, consumerID: consumer) { done.resume(returning: $0) } }
    }

    func update(_ update: StatusUpdate) async -> Result<TaskRecord, TaskError> {
        await withCheckedContinuation { done in self.update(update) { done.resume(returning: $0) } }
    }

    func cancel(_ taskID: String) async -> Result<TaskRecord, TaskError> {
        await withCheckedContinuation { done in cancel(taskID: taskID) { done.resume(returning: $0) } }
    }

    func handBack(_ taskID: String, lease: String) async -> Result<TaskRecord?, TaskError> {
        await withCheckedContinuation { done in handBack(taskID: taskID, leaseID: lease) { done.resume(returning: $0) } }
    }

    func expireLeases(limit: Int) async -> Result<Int, TaskError> {
        await withCheckedContinuation { done in expireLeases(limit: limit) { done.resume(returning: $0) } }
    }

    /// The ids of the purged tasks.
    func purgeFinished(before cutoffMs: Int64, limit: Int) async -> Result<[String], TaskError> {
        await withCheckedContinuation { done in
            purgeFinished(changedBeforeMs: cutoffMs, limit: limit) { done.resume(returning: $0.map { $0.map(\.taskID) }) }
        }
    }

    func task(id: String) async -> Result<TaskRecord?, TaskError> {
        await withCheckedContinuation { done in task(id: id) { done.resume(returning: $0) } }
    }

    func list(_ query: TaskListQuery) async -> Result<TaskPage, TaskError> {
        await withCheckedContinuation { done in list(query) { done.resume(returning: $0) } }
    }

    func stats(_ scope: TaskScope, workflow: String? = nil, since: Int64) async -> Result<TaskStoreStats, TaskError> {
        await withCheckedContinuation { done in
            stats(scope: scope, workflow: workflow, finishedSinceMs: since) { done.resume(returning: $0) }
        }
    }
}

let sampleParameters = FaceSwapParameters(
    sourceURL: "https://example.com/face.jpg", targetURL: "https://example.com/photo.jpg", resolution: "1024x1024",
    model: "inswapper_128_fp16")

/// A record with every optional part filled in (or left out with `complete: false`), so a
/// round trip through a store checks every column.
func sampleRecord(_ number: Int, version: Int64 = 1, complete: Bool = true) -> TaskRecord {
    var params = sampleParameters
    if complete { params.options = ["face_selector_mode": "one", "note": "quotes \" and \\ and ü"] }
    return TaskRecord(
        taskID: "task_\(number)", workflow: "face_swap", environment: "face_swap", targetPort: 8000, params: params,
        state: complete ? .processing : .pending, sourceChannel: "http://localhost:8000",
        createdAtMs: 1_700_000_000_000 + Int64(number), updatedAtMs: 1_700_000_000_500 + Int64(number),
        progress: complete ? 0.25 : 0, error: complete ? "first try failed" : "",
        output: complete
            ? TaskOutput(
                outputURL: "https://cdn.example.com/\(number).jpg", outputs: ["gif": "https://cdn.example.com/\(number).gif"],
                processingTime: 12.5, jobID: "job_\(number)", storageProvider: "gcs")
            : nil,
        attempt: complete ? 2 : 0, priority: Int32(number % 3), idempotencyKey: complete ? "key-\(number)" : nil,
        lease: complete ? Lease(id: "lease_\(number)", consumerID: "worker-1", expiresAtMs: 1_700_000_030_000) : nil,
        version: version)
}

extension SQLiteConnection {
    /// Column `column` of every row `sql` returns, as text (EXPLAIN QUERY PLAN's detail is 3).
    func textColumnAt(_ column: Int32, _ sql: String) throws -> [String] {
        let statement = try prepare(sql)
        var values: [String] = []
        while try statement.step() { values.append(statement.text(at: column)) }
        return values
    }
}
