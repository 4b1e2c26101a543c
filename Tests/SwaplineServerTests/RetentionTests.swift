import Logging
import NIOCore
import SwaplineCore
import Testing
@testable import SwaplineServer

/// The server's background retention: finished tasks past their age go, everything else stays.
@Suite struct RetentionTests {
    @Test func theServerPurgesFinishedTasksPastTheirRetentionInBatches() async throws {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.eventLoopThreads = 1
        configuration.finishedTaskRetention = .milliseconds(200)
        configuration.retentionSweepInterval = .milliseconds(50)
        configuration.retentionBatchSize = 2  // several batches in one sweep
        let queue = InMemoryTaskQueue(rules: TaskRules(configuration.scheduler))
        let server = try await RunningServer.start(configuration: configuration, queue: queue, logger: Logger(label: "test"))
        let scheduler = server.scheduler
        let params = FaceSwapParameters(sourceURL: "https://example.com/a.jpg", targetURL: "https://example.com/b.jpg", resolution: "", model: "")
        func create() async throws -> TaskRecord {
            try await withCheckedThrowingContinuation { done in
                scheduler.createTask(CreateTaskCommand(params: params)) { done.resume(with: $0.mapError { $0 }) }
            }
        }
        var finished: [String] = []
        for _ in 0..<5 {
            let task = try await create()
            _ = try await withCheckedThrowingContinuation { (done: CheckedContinuation<TaskRecord, any Error>) in
                scheduler.cancelTask(id: task.taskID) { done.resume(with: $0.mapError { $0 }) }
            }
            finished.append(task.taskID)
        }
        let open = try await create()

        let deadline = ContinuousClock.now + .seconds(5)
        while queue.count > 1, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        await server.shutdown()
        #expect(queue.count == 1)
        #expect(await withCheckedContinuation { done in queue.task(id: open.taskID) { done.resume(returning: $0) } }.map { $0?.taskID } == .success(open.taskID))
        _ = finished
    }
}
