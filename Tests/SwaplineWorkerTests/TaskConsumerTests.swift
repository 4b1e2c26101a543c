import Logging
import SwaplineClient
import SwaplineMessages
import SwaplineServer
import Synchronization
import Testing

@testable import SwaplineWorker

/// A processor whose outcome the test chooses; it records how far it got.
private final class ScriptedProcessor: TaskProcessor {
    enum Script: Sendable { case succeed, fail(TaskFailure), block }
    let script: Script

    init(script: Script) { self.script = script }
    let started = Mutex(0)
    var workflow: String { "face_swap" }

    func process(_ task: Swapline_V1_Task, progress: ProgressReporter) async throws(TaskFailure) -> Swapline_V1_TaskResult {
        started.withLock { $0 += 1 }
        await progress.report(0.5, "working")
        switch script {
        case .succeed:
            return Swapline_V1_TaskResult(outputURL: "http://x/outputs/\(task.taskID)/result.jpg", storageProvider: "local")
        case .fail(let failure):
            throw failure
        case .block:
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
            throw TaskFailure(stage: "facefusion", reason: "cancelled")
        }
    }
}

/// A server on a loopback port and a consumer of it running `processor`; drained and stopped after `body`.
private func withConsumer(
    _ processor: ScriptedProcessor, drainTimeout: Duration = .seconds(5),
    _ body: (SwaplineClient, TaskConsumer) async throws -> Void
) async throws {
    var configuration = ServerConfiguration()
    configuration.port = 0
    configuration.eventLoopThreads = 1
    let server = try await RunningServer.start(configuration: configuration, logger: Logger(label: "test"))
    let client = SwaplineClient(serverURL: "http://127.0.0.1:\(server.port)")
    let engines = EnginePool(urls: ["http://engine"]) { _ in nil }
    var consumerConfiguration = ConsumerConfiguration()
    consumerConfiguration.fetchWait = .seconds(1)
    consumerConfiguration.drainTimeout = drainTimeout
    let consumer = TaskConsumer(
        client: client, processors: [processor], engines: engines, configuration: consumerConfiguration, logger: Logger(label: "test"))
    let running = Task { await consumer.run() }
    do {
        try await body(client, consumer)
    } catch {
        consumer.drain()
        await running.value
        await server.shutdown()
        throw error
    }
    consumer.drain()
    await running.value
    await server.shutdown()
}

private func submit(_ client: SwaplineClient) async throws -> String {
    try await client.createTask(
        Swapline_V1_CreateTaskRequest(params: Swapline_V1_FaceSwapParams(sourceURL: "https://e/a.jpg", targetURL: "https://e/b.jpg"))
    ).taskID
}

private func waitFor(_ client: SwaplineClient, _ id: String, _ status: Swapline_V1_TaskStatus) async throws -> Swapline_V1_Task {
    for _ in 0..<200 {
        let task = try await client.getTask(id: id)
        if task.status == status { return task }
        try await Task.sleep(for: .milliseconds(25))
    }
    return try await client.getTask(id: id)
}

@Suite struct TaskConsumerTests {
    @Test func aSuccessfulTaskIsReportedCompleted() async throws {
        try await withConsumer(ScriptedProcessor(script: .succeed)) { client, _ in
            let id = try await submit(client)
            let task = try await waitFor(client, id, .completed)
            #expect(task.status == .completed)
            #expect(task.result?.storageProvider == "local")
            #expect(task.progress == 1)
        }
    }

    @Test func aFailureIsReportedWithItsStage() async throws {
        let failure = TaskFailure(stage: "download", reason: "HTTP 404")
        try await withConsumer(ScriptedProcessor(script: .fail(failure))) { client, _ in
            let id = try await submit(client)
            let task = try await waitFor(client, id, .failed)
            #expect(task.error == "download: HTTP 404")
        }
    }

    @Test func drainingHandsUnfinishedWorkBack() async throws {
        let processor = ScriptedProcessor(script: .block)
        try await withConsumer(processor, drainTimeout: .milliseconds(200)) { client, consumer in
            let id = try await submit(client)
            _ = try await waitFor(client, id, .processing)
            while processor.started.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(10)) }
            consumer.drain()
            let task = try await waitFor(client, id, .pending)
            #expect(task.status == .pending)
        }
    }
}
