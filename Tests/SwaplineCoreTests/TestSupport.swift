import Synchronization
@testable import SwaplineCore

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let now = Mutex<Int64>(1_700_000_000_000)
    var clock: WallClock { WallClock { [self] in now.withLock { $0 } } }
    func advance(ms: Int64) { now.withLock { $0 += ms } }
}

/// Collects asynchronous results for synchronous assertions (the in-memory store calls back
/// before the scheduler returns).
final class Collected<T: Sendable>: Sendable {
    private let values = Mutex<[T]>([])
    func append(_ value: T) { values.withLock { $0.append(value) } }
    var all: [T] { values.withLock { $0 } }
    var last: T? { all.last }
}

/// A store whose writes fail on demand.
final class FailingStore: TaskStore {
    private let inner = InMemoryTaskStore()
    private let failing = Mutex(false)
    func setFailing(_ value: Bool) { failing.withLock { $0 = value } }
    func loadAll() throws -> [TaskRecord] { try inner.loadAll() }
    func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        if failing.withLock({ $0 }) {
            completion(.failure(TaskStoreError(.resourceExhausted, "disk full")))
        } else {
            inner.write(records, completion: completion)
        }
    }
    func delete(_ taskIDs: [String], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        if failing.withLock({ $0 }) {
            completion(.failure(TaskStoreError(.unavailable, "I/O error")))
        } else {
            inner.delete(taskIDs, completion: completion)
        }
    }
}

/// A store that holds every write until the test releases it, like a disk in the middle of
/// an fsync.
final class HeldStore: TaskStore {
    private let inner = InMemoryTaskStore()
    private let held = Mutex<[(records: [TaskRecord], completion: @Sendable (Result<Void, TaskStoreError>) -> Void)]>([])
    func loadAll() throws -> [TaskRecord] { try inner.loadAll() }
    func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        held.withLock { $0.append((records, completion)) }
    }
    func delete(_ taskIDs: [String], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        inner.delete(taskIDs, completion: completion)
    }
    /// Completes every held write with `result`, committing them first when it is a success.
    func release(_ result: Result<Void, TaskStoreError>) {
        for write in held.withLock({ held in defer { held = [] }; return held }) {
            if case .success = result { inner.write(write.records) { _ in } }
            write.completion(result)
        }
    }
}

let sampleParams = FaceSwapParameters(
    sourceURL: "https://example.com/a.jpg", targetURL: "https://example.com/b.jpg", resolution: "", model: "")

extension TaskScheduler {
    /// Creates a task and returns it (in-memory stores answer synchronously).
    func create(_ command: CreateTaskCommand = CreateTaskCommand(params: sampleParams)) -> Result<TaskRecord, TaskError> {
        let result = Collected<Result<TaskRecord, TaskError>>()
        createTask(command) { result.append($0) }
        return result.last!
    }

    func fetch(_ workflows: [String] = [], consumer: String = "c1") -> LeaseGrant? {
        let result = Collected<Result<LeaseGrant?, TaskError>>()
        fetchTask(consumerID: consumer, workflows: workflows, waitMs: 0) { result.append($0) }
        return try! result.last!.get()
    }

    func update(_ update: StatusUpdate) -> Result<TaskRecord, TaskError> {
        let result = Collected<Result<TaskRecord, TaskError>>()
        updateStatus(update) { result.append($0) }
        return result.last!
    }

    func cancel(_ id: String) -> Result<TaskRecord, TaskError> {
        let result = Collected<Result<TaskRecord, TaskError>>()
        cancelTask(id: id) { result.append($0) }
        return result.last!
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
