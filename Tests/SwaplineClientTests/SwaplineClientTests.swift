import Logging
import SwaplineClient
import SwaplineMessages
import SwaplineServer
import Testing

/// Runs `body` against a real server on a loopback port, over the real HTTP/2 transport.
private func withServer(_ body: (SwaplineClient) async throws -> Void) async throws {
    var configuration = ServerConfiguration()
    configuration.port = 0
    configuration.eventLoopThreads = 1
    let server = try await RunningServer.start(configuration: configuration, logger: Logger(label: "test"))
    let client = SwaplineClient(serverURL: "http://127.0.0.1:\(server.port)")
    do {
        try await body(client)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}

private let params = Swapline_V1_FaceSwapParams(sourceURL: "https://example.com/face.jpg", targetURL: "https://example.com/photo.jpg")

@Suite struct SwaplineClientTests {
    @Test func createThenGetReturnsTheSameTask() async throws {
        try await withServer { client in
            let created = try await client.createTask(Swapline_V1_CreateTaskRequest(params: params))
            #expect(created.status == .pending)
            let fetched = try await client.getTask(id: created.taskID)
            #expect(fetched.taskID == created.taskID)
            #expect(fetched.params?.model == "inswapper_128_fp16")
        }
    }

    @Test func serverErrorsBecomeTypedErrors() async throws {
        try await withServer { client in
            await #expect(throws: SwaplineClientError(code: .notFound, message: "task 'task_missing' does not exist")) {
                try await client.getTask(id: "task_missing")
            }
            await #expect {
                try await client.createTask(Swapline_V1_CreateTaskRequest(params: Swapline_V1_FaceSwapParams(sourceURL: "ftp://x")))
            } throws: { ($0 as? SwaplineClientError)?.code == .invalidArgument }
        }
    }

    @Test func consumerCallsDriveATaskToCompletionWhileItIsWatched() async throws {
        try await withServer { client in
            let task = try await client.createTask(Swapline_V1_CreateTaskRequest(params: params))
            let watcher = Task {
                var statuses: [Swapline_V1_TaskStatus] = []
                for try await event in client.watchTask(id: task.taskID) { statuses.append(event.task?.status ?? .unspecified) }
                return statuses
            }
            let lease = try await client.fetchTask(Swapline_V1_FetchTaskRequest(consumerID: "test", waitMs: 1000))
            #expect(lease.task?.taskID == task.taskID)
            _ = try await client.updateStatus(
                Swapline_V1_UpdateStatusRequest(taskID: task.taskID, leaseID: lease.leaseID, status: .processing, progress: 0.5))
            let done = try await client.updateStatus(
                Swapline_V1_UpdateStatusRequest(
                    taskID: task.taskID, leaseID: lease.leaseID, status: .completed,
                    result: Swapline_V1_TaskResult(outputURL: "http://x/outputs/a/result.jpg")))
            #expect(done.status == .completed)
            let statuses = try await watcher.value
            #expect(statuses.first == .pending || statuses.first == .processing)
            #expect(statuses.last == .completed)
        }
    }

    @Test func cancelledTaskAnswersTheWorkerWithAborted() async throws {
        try await withServer { client in
            let task = try await client.createTask(Swapline_V1_CreateTaskRequest(params: params))
            let lease = try await client.fetchTask(Swapline_V1_FetchTaskRequest(consumerID: "test", waitMs: 0))
            let cancelled = try await client.cancelTask(id: task.taskID)
            #expect(cancelled.status == .cancelled)
            await #expect {
                try await client.updateStatus(
                    Swapline_V1_UpdateStatusRequest(taskID: task.taskID, leaseID: lease.leaseID, status: .processing, progress: 0.1))
            } throws: { ($0 as? SwaplineClientError)?.code == .aborted }
        }
    }

    @Test func emptyLongPollReturnsNoTask() async throws {
        try await withServer { client in
            let response = try await client.fetchTask(Swapline_V1_FetchTaskRequest(consumerID: "test", waitMs: 50))
            #expect(response.task == nil)
        }
    }

    @Test func processSyncTimesOutWithDeadlineExceeded() async throws {
        try await withServer { client in
            await #expect {
                try await client.processSync(Swapline_V1_ProcessSyncRequest(params: params), timeout: .milliseconds(200))
            } throws: { ($0 as? SwaplineClientError)?.code == .deadlineExceeded }
        }
    }

    @Test func unreachableServerIsUnavailable() async throws {
        let client = SwaplineClient(serverURL: "http://127.0.0.1:1")
        await #expect {
            try await client.getTask(id: "task_x")
        } throws: { ($0 as? SwaplineClientError)?.code == .unavailable }
    }
}
