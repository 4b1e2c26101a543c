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

extension SQLiteTaskStore {
    static func open(in directory: TemporaryDirectory, groupCommit: Bool = true) throws(TaskStoreOpenError) -> SQLiteTaskStore {
        var configuration = Configuration(directory: directory.path)
        configuration.groupCommit = groupCommit
        return try SQLiteTaskStore(configuration: configuration)
    }
}

extension TaskStore {
    func write(_ records: [TaskRecord]) async -> Result<Void, TaskStoreError> {
        await withCheckedContinuation { done in write(records) { done.resume(returning: $0) } }
    }

    func delete(_ taskIDs: [String]) async -> Result<Void, TaskStoreError> {
        await withCheckedContinuation { done in delete(taskIDs) { done.resume(returning: $0) } }
    }

    func loadByID() throws -> [String: TaskRecord] {
        Dictionary(uniqueKeysWithValues: try loadAll().map { ($0.taskID, $0) })
    }
}

/// The scheduler's calls as `async` functions: stores with a disk answer on their own thread.
extension TaskScheduler {
    func create(key: String = "", priority: Int32 = 0) async -> Result<TaskRecord, TaskError> {
        let command = CreateTaskCommand(params: sampleParameters, idempotencyKey: key, priority: priority)
        return await withCheckedContinuation { done in createTask(command) { done.resume(returning: $0) } }
    }

    func fetch(consumer: String = "worker") async -> Result<LeaseGrant?, TaskError> {
        await withCheckedContinuation { done in
            fetchTask(consumerID: consumer, workflows: [], waitMs: 0) { done.resume(returning: $0) }
        }
    }

    func update(_ update: StatusUpdate) async -> Result<TaskRecord, TaskError> {
        await withCheckedContinuation { done in updateStatus(update) { done.resume(returning: $0) } }
    }

    func purge(olderThanMs ageMs: Int64, limit: Int) async -> Result<Int, TaskError> {
        await withCheckedContinuation { done in
            purgeFinishedTasks(olderThanMs: ageMs, limit: limit) { done.resume(returning: $0) }
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
