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

/// An in-memory queue the test can disturb: claims whose answer is held back until released
/// (a claim still running in a database), a change feed that drops changes (a lost
/// notification), and a backend that cannot be reached.
final class ControlledQueue: TaskQueue {
    let inner: InMemoryTaskQueue
    private struct Controls {
        var holdClaimAnswers = false
        var heldAnswers: [@Sendable () -> Void] = []
        var dropChanges = false
        var unreachable = false
        var handler: (@Sendable (TaskRecord) -> Void)?
    }
    private let controls = Mutex(Controls())

    init(rules: TaskRules, clock: WallClock) {
        inner = InMemoryTaskQueue(rules: rules, clock: clock)
        inner.setChangeHandler { [unowned self] task in
            let handler = controls.withLock { $0.dropChanges ? nil : $0.handler }
            handler?(task)
        }
    }

    func holdClaimAnswers() { controls.withLock { $0.holdClaimAnswers = true } }
    func releaseClaimAnswers() {
        let held = controls.withLock { controls in
            controls.holdClaimAnswers = false
            defer { controls.heldAnswers = [] }
            return controls.heldAnswers
        }
        for answer in held { answer() }
    }
    func setDropChanges(_ value: Bool) { controls.withLock { $0.dropChanges = value } }
    func setUnreachable(_ value: Bool) { controls.withLock { $0.unreachable = value } }

    private var unreachable: TaskError? {
        controls.withLock { $0.unreachable } ? TaskError(.unavailable, "the task store is unreachable") : nil
    }

    func setChangeHandler(_ handler: @escaping @Sendable (TaskRecord) -> Void) { controls.withLock { $0.handler = handler } }
    var changeFeedRecheckIntervalMs: Int64? { 1_000 }

    func create(_ task: TaskRecord, completion: @escaping Completion<CreateOutcome>) {
        if let unreachable { return completion(.failure(unreachable)) }
        inner.create(task, completion: completion)
    }
    func claim(workflows: Set<String>, consumerID: String, completion: @escaping Completion<LeaseGrant?>) {
        if let unreachable { return completion(.failure(unreachable)) }
        inner.claim(workflows: workflows, consumerID: consumerID) { [self] result in
            let held = controls.withLock { controls in
                guard controls.holdClaimAnswers else { return false }
                controls.heldAnswers.append { completion(result) }
                return true
            }
            if !held { completion(result) }
        }
    }
    func update(_ update: StatusUpdate, completion: @escaping Completion<TaskRecord>) { inner.update(update, completion: completion) }
    func cancel(taskID: String, completion: @escaping Completion<TaskRecord>) { inner.cancel(taskID: taskID, completion: completion) }
    func handBack(taskID: String, leaseID: String, completion: @escaping Completion<TaskRecord?>) {
        inner.handBack(taskID: taskID, leaseID: leaseID, completion: completion)
    }
    func list(_ query: TaskListQuery, completion: @escaping Completion<TaskPage>) { inner.list(query, completion: completion) }
    func stats(scope: TaskScope, workflow: String?, finishedSinceMs: Int64, completion: @escaping Completion<TaskStoreStats>) {
        inner.stats(scope: scope, workflow: workflow, finishedSinceMs: finishedSinceMs, completion: completion)
    }
    func expireLeases(limit: Int, completion: @escaping Completion<Int>) { inner.expireLeases(limit: limit, completion: completion) }
    func purgeFinished(changedBeforeMs cutoffMs: Int64, limit: Int, completion: @escaping Completion<[TaskRecord]>) {
        inner.purgeFinished(changedBeforeMs: cutoffMs, limit: limit, completion: completion)
    }
    func task(id: String, completion: @escaping Completion<TaskRecord?>) { inner.task(id: id, completion: completion) }
    func close() async {}
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

    /// The stored task (in-memory queues answer synchronously).
    func get(_ id: String) -> TaskRecord? {
        let result = Collected<Result<TaskRecord, TaskError>>()
        task(id: id) { result.append($0) }
        return try? result.last?.get()
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
