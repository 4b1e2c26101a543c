import NIOCore
import Synchronization
import NIOEmbedded
import RPCCore
import SwaplineCore
import SwaplineMessages
import SwaplineTestKit
import Testing
@testable import SwaplineServer

/// The RPC handlers, driven through the real gRPC stream logic on an embedded event loop.
@Suite struct ServiceTests {
    let loop = EmbeddedEventLoop()
    let scheduler: TaskScheduler
    let router: RPCRouter

    init() throws {
        var configuration = SchedulerConfiguration()
        configuration.leaseDurationMs = 60_000
        scheduler = TaskScheduler(configuration: configuration, queue: InMemoryTaskQueue(rules: TaskRules(configuration)))
        var router = RPCRouter()
        TaskService(scheduler: scheduler).register(in: &router)
        ConsumerService(scheduler: scheduler).register(in: &router)
        self.router = router
    }

    private let params = Swapline_V1_FaceSwapParams(sourceURL: "https://example.com/a.jpg", targetURL: "https://example.com/b.jpg")

    @discardableResult
    private func call(_ path: String, _ message: some ProtoMessage, timeout: String? = nil) -> (RecordingStreamWriter, GRPCServerStream) {
        let writer = RecordingStreamWriter(loop: loop)
        let extra = timeout.map { [HeaderField("grpc-timeout", $0)] } ?? []
        let stream = sendRequest(message.serializedBuffer(), path: path, router: router, writer: writer, extraHeaders: extra)
        return (writer, stream)
    }

    private func decoded<M: ProtoMessage>(_ type: M.Type, _ writer: RecordingStreamWriter, at index: Int = 0) throws -> M {
        try M(protobufBytes: try #require(writer.messages.dropFirst(index).first))
    }

    private func createTask() throws -> Swapline_V1_Task {
        let (writer, _) = call("/swapline.v1.TaskService/CreateTask", Swapline_V1_CreateTaskRequest(params: params))
        return try decoded(Swapline_V1_Task.self, writer)
    }

    @Test func createTaskAnswersThePendingTask() throws {
        let task = try createTask()
        #expect(task.status == .pending && task.taskID.hasPrefix("task_"))
        #expect(task.params?.model == "inswapper_128_fp16" && task.params?.resolution == "1024x1024")
        #expect(task.workflow == "face_swap" && task.environment == "face_swap")
    }

    @Test func createsOverTheRateAreRefusedWithARetryHintPerAddress() {
        var router = RPCRouter()
        let limiter = CreateRateLimiter(limit: CreateRateLimit(perSecond: 0.01, burst: 1))
        TaskService(scheduler: scheduler, createLimiter: limiter).register(in: &router)
        func create(from address: String) -> RecordingStreamWriter {
            let writer = RecordingStreamWriter(loop: loop)
            writer.peerAddress = address
            sendRequest(
                Swapline_V1_CreateTaskRequest(params: params).serializedBuffer(), path: "/swapline.v1.TaskService/CreateTask",
                router: router, writer: writer)
            return writer
        }
        #expect(create(from: "192.0.2.1").messages.count == 1)
        let refused = create(from: "192.0.2.1")
        #expect(refused.messages.isEmpty && refused.statusFields["grpc-status"] == "8")
        #expect(refused.statusFields["retry-after"] == "100")
        #expect(refused.statusFields["grpc-message"]?.contains("address 192.0.2.1") == true)
        #expect(refused.statusFields["grpc-message"]?.contains("retry after 100 s") == true)
        #expect(create(from: "192.0.2.2").messages.count == 1)
    }

    @Test func invalidInputIsInvalidArgumentNamingTheField() {
        var bad = params
        bad.targetURL = "not a url"
        let (writer, _) = call("/swapline.v1.TaskService/CreateTask", Swapline_V1_CreateTaskRequest(params: bad))
        #expect(writer.statusFields["grpc-status"] == "3")
        #expect(writer.statusFields["grpc-message"]?.contains("target_url") == true)
    }

    @Test func malformedRequestIsInvalidArgument() {
        let writer = RecordingStreamWriter(loop: loop)
        sendRequest(ByteBuffer(bytes: [0x0A, 0xFF]), path: "/swapline.v1.TaskService/GetTask", router: router, writer: writer)
        #expect(writer.statusFields["grpc-status"] == "3")
    }

    @Test func waitingFetchIsAnsweredWhenATaskArrives() throws {
        let (waiting, _) = call("/swapline.v1.ConsumerService/FetchTask", Swapline_V1_FetchTaskRequest(consumerID: "w", waitMs: 5_000))
        #expect(waiting.events.isEmpty)
        let task = try createTask()
        let response = try decoded(Swapline_V1_FetchTaskResponse.self, waiting)
        #expect(response.task?.taskID == task.taskID && response.task?.attempt == 1 && !response.leaseID.isEmpty)
    }

    @Test func waitThatRunsOutGetsAnEmptyResponse() throws {
        let (waiting, _) = call("/swapline.v1.ConsumerService/FetchTask", Swapline_V1_FetchTaskRequest(waitMs: 200))
        loop.advanceTime(by: .milliseconds(250))
        let response = try decoded(Swapline_V1_FetchTaskResponse.self, waiting)
        #expect(response.task == nil && response.leaseID.isEmpty)
        #expect(waiting.statusFields["grpc-status"] == "0")
    }

    @Test func leaseWhoseResponseWasResetReturnsToTheQueue() async throws {
        let task = try createTask()
        let (writer, stream) = call("/swapline.v1.ConsumerService/FetchTask", Swapline_V1_FetchTaskRequest(waitMs: 0))
        #expect(try decoded(Swapline_V1_FetchTaskResponse.self, writer).task?.taskID == task.taskID)
        stream.streamClosed(cleanly: false)
        let returned = await withCheckedContinuation { done in scheduler.task(id: task.taskID) { done.resume(returning: $0) } }
        #expect(returned.map(\.state) == .success(.pending))
        #expect(returned.map(\.attempt) == .success(0))
    }

    @Test func updateStatusMapsSchedulerRefusalsToStatusCodes() throws {
        let task = try createTask()
        let (missing, _) = call("/swapline.v1.ConsumerService/UpdateStatus", Swapline_V1_UpdateStatusRequest(taskID: "task_x", leaseID: "l", status: .processing))
        #expect(missing.statusFields["grpc-status"] == "5")
        let (wrongLease, _) = call("/swapline.v1.ConsumerService/UpdateStatus", Swapline_V1_UpdateStatusRequest(taskID: task.taskID, leaseID: "l", status: .processing))
        #expect(wrongLease.statusFields["grpc-status"] == "9")
        call("/swapline.v1.TaskService/CancelTask", Swapline_V1_CancelTaskRequest(taskID: task.taskID))
        let (cancelled, _) = call("/swapline.v1.ConsumerService/UpdateStatus", Swapline_V1_UpdateStatusRequest(taskID: task.taskID, leaseID: "l", status: .processing))
        #expect(cancelled.statusFields["grpc-status"] == "10")
    }

    @Test func slowWatcherGetsTheLatestStateNotEveryState() throws {
        let task = try createTask()
        let writer = RecordingStreamWriter(loop: loop)
        // The client reads nothing yet: what was sent stays queued on the stream.
        writer.queuedBodyBytes = 100
        let stream = sendRequest(
            Swapline_V1_WatchTaskRequest(taskID: task.taskID).serializedBuffer(), path: "/swapline.v1.TaskService/WatchTask",
            router: router, writer: writer)
        #expect(writer.messages.count == 1)
        let grant = try #require(scheduler.fetchNow())
        for progress in [Float(0.2), 0.4, 0.6] {
            scheduler.updateStatus(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .processing, progress: progress)) { _ in }
        }
        #expect(writer.messages.count == 1)
        writer.queuedBodyBytes = 0
        stream.bodyDrained()
        #expect(writer.messages.count == 2)
        let latest = try decoded(Swapline_V1_TaskEvent.self, writer, at: 1)
        // Created (1), leased (2), three progress reports (3...5): only the newest is sent.
        #expect(latest.task?.progress == 0.6 && latest.sequence == 5)
        scheduler.updateStatus(StatusUpdate(taskID: task.taskID, leaseID: grant.lease.id, state: .failed, error: "boom")) { _ in }
        let last = try decoded(Swapline_V1_TaskEvent.self, writer, at: 2)
        #expect(last.task?.status == .failed && last.sequence == 6)
        #expect(writer.statusFields["grpc-status"] == "0")
    }

    @Test func processSyncNamesTheTaskWhenTheDeadlinePasses() throws {
        let (writer, _) = call("/swapline.v1.TaskService/ProcessSync", Swapline_V1_ProcessSyncRequest(params: params), timeout: "100m")
        loop.advanceTime(by: .milliseconds(150))
        #expect(writer.statusFields["grpc-status"] == "4")
        #expect(writer.statusFields["grpc-message"]?.contains("task_") == true)
    }

    @Test func processSyncAnswersWithTheFinishedTask() throws {
        let (writer, _) = call("/swapline.v1.TaskService/ProcessSync", Swapline_V1_ProcessSyncRequest(params: params))
        let grant = try #require(scheduler.fetchNow())
        #expect(grant.task.priority == TaskService.processSyncPriority)
        let output = TaskOutput(
            outputURL: "http://s/r.jpg", outputs: ["jpg": "http://s/r.jpg", "gif": "http://s/r.gif"], processingTime: 1.5,
            jobID: "job_1", storageProvider: "local")
        scheduler.updateStatus(StatusUpdate(taskID: grant.task.taskID, leaseID: grant.lease.id, state: .completed, output: output)) { _ in }
        let response = try decoded(Swapline_V1_FaceSwapResponse.self, writer)
        #expect(response.status == "success" && response.outputPath == "http://s/r.jpg" && response.taskID == grant.task.taskID)
        #expect(response.metadata == ["gif_url": "http://s/r.gif", "storage_url": "http://s/r.jpg", "storage_provider": "local"])
        #expect(response.processingTime == 1.5 && response.jobID == "job_1")
    }

    @Test func healthFollowsTheStoresReachabilityAndTellsWatchers() throws {
        let reachable = Mutex(true)
        let health = HealthService(services: ["swapline.v1.TaskService"], isStoreReachable: { reachable.withLock { $0 } })
        var router = RPCRouter()
        health.register(in: &router)
        func check() throws -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
            let writer = RecordingStreamWriter(loop: loop)
            sendRequest(Grpc_Health_V1_HealthCheckRequest(service: "").serializedBuffer(), path: "/grpc.health.v1.Health/Check", router: router, writer: writer)
            return try Grpc_Health_V1_HealthCheckResponse(protobufBytes: try #require(writer.messages.first)).status
        }
        let watcher = RecordingStreamWriter(loop: loop)
        sendRequest(Grpc_Health_V1_HealthCheckRequest(service: "swapline.v1.TaskService").serializedBuffer(), path: "/grpc.health.v1.Health/Watch", router: router, writer: watcher)
        func watched() throws -> [Grpc_Health_V1_HealthCheckResponse.ServingStatus] {
            try watcher.messages.map { try Grpc_Health_V1_HealthCheckResponse(protobufBytes: $0).status }
        }
        #expect(try check() == .serving)
        reachable.withLock { $0 = false }
        #expect(try check() == .notServing)
        health.refreshStoreReachability()
        health.refreshStoreReachability()  // unchanged: nothing more to tell
        reachable.withLock { $0 = true }
        health.refreshStoreReachability()
        #expect(try check() == .serving)
        #expect(try watched() == [.serving, .notServing, .serving])
        health.markNotServing()
        #expect(try check() == .notServing)
        #expect(try watched().last == .notServing)
    }

}

extension TaskScheduler {
    /// Leases the next task now (the in-memory store answers synchronously).
    func fetchNow() -> LeaseGrant? {
        let box = GrantBox()
        fetchTask(consumerID: "test", workflows: [], waitMs: 0) { box.grant = try? $0.get() }
        return box.grant
    }
}

private final class GrantBox: @unchecked Sendable {
    var grant: LeaseGrant?
}

/// The caps on open FetchTask and WatchTask calls, per connection and in total.
@Suite struct LongPollLimitTests {
    let loop = EmbeddedEventLoop()
    let scheduler: TaskScheduler
    let router: RPCRouter

    init() {
        let configuration = SchedulerConfiguration()
        scheduler = TaskScheduler(configuration: configuration, queue: InMemoryTaskQueue(rules: TaskRules(configuration)))
        var limits = LongPollLimits()
        limits.maxParkedFetchesPerConnection = 2
        limits.maxParkedFetches = 3
        limits.maxWatchesPerConnection = 1
        limits.maxWatches = 2
        var router = RPCRouter()
        TaskService(scheduler: scheduler, limits: limits).register(in: &router)
        ConsumerService(scheduler: scheduler, limits: limits).register(in: &router)
        self.router = router
    }

    private func fetch(on connection: ConnectionID) -> (RecordingStreamWriter, GRPCServerStream) {
        let writer = RecordingStreamWriter(loop: loop, connectionID: connection)
        let request = Swapline_V1_FetchTaskRequest(waitMs: 20_000)
        return (writer, sendRequest(request.serializedBuffer(), path: "/swapline.v1.ConsumerService/FetchTask", router: router, writer: writer))
    }

    @Test func fetchesBeyondEitherCapAreRefusedAndAFinishedOneFreesItsPlace() {
        let first = ConnectionID.next(), second = ConnectionID.next()
        let (_, parked) = fetch(on: first)
        _ = fetch(on: first)
        let (perConnection, _) = fetch(on: first)
        loop.run()
        #expect(perConnection.statusFields["grpc-status"] == "8")
        #expect(perConnection.statusFields["grpc-message"]?.contains("limit per connection") == true)
        _ = fetch(on: second)
        let (total, _) = fetch(on: second)
        loop.run()
        #expect(total.statusFields["grpc-status"] == "8")
        #expect(total.statusFields["grpc-message"]?.contains("the server has 3") == true)
        // The client resets one parked poll: its place is free for anyone.
        parked.streamClosed(cleanly: false)
        loop.run()
        let (admitted, _) = fetch(on: second)
        loop.run()
        #expect(admitted.statusFields.isEmpty)
        // A poll that times out (answered empty) frees its place too.
        loop.advanceTime(by: .seconds(31))
        let (afterTimeout, _) = fetch(on: second)
        loop.run()
        #expect(afterTimeout.statusFields.isEmpty)
    }

    @Test func watchesBeyondTheCapsAreRefused() throws {
        let connection = ConnectionID.next()
        let created = RecordingStreamWriter(loop: loop)
        let request = Swapline_V1_CreateTaskRequest(
            params: Swapline_V1_FaceSwapParams(sourceURL: "https://example.com/a.jpg", targetURL: "https://example.com/b.jpg"))
        sendRequest(request.serializedBuffer(), path: "/swapline.v1.TaskService/CreateTask", router: router, writer: created)
        loop.run()
        let task = try Swapline_V1_Task(protobufBytes: try #require(created.messages.first))
        func watch(on connection: ConnectionID) -> RecordingStreamWriter {
            let writer = RecordingStreamWriter(loop: loop, connectionID: connection)
            let request = Swapline_V1_WatchTaskRequest(taskID: task.taskID)
            sendRequest(request.serializedBuffer(), path: "/swapline.v1.TaskService/WatchTask", router: router, writer: writer)
            loop.run()
            return writer
        }
        #expect(watch(on: connection).statusFields.isEmpty)
        #expect(watch(on: connection).statusFields["grpc-status"] == "8")
        #expect(watch(on: ConnectionID.next()).statusFields.isEmpty)
        #expect(watch(on: ConnectionID.next()).statusFields["grpc-status"] == "8")
    }
}
