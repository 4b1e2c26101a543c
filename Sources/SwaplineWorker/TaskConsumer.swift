import Logging
import RPCCore
import SwaplineClient
import SwaplineLogging
import SwaplineMessages
import Foundation
import Synchronization

public struct ConsumerConfiguration: Sendable {
    /// Recorded with each lease, e.g. "host-1#42".
    public var consumerID = "swapline-worker"
    /// Tasks worked on at once.
    public var concurrency = 1
    /// FetchTask long-poll length.
    public var fetchWait: Duration = .seconds(10)
    /// After `drain()`, how long in-flight tasks may run on before they are handed back.
    public var drainTimeout: Duration = .seconds(30)
    public var healthInterval: Duration = .seconds(5)

    public init() {}
}

/// The worker loop: `concurrency` slots each long-poll FetchTask for the workflows that have a
/// processor, run the processor, and report. Each running task sends PROCESSING at every stage
/// and a heartbeat in between (both renew the lease). ABORTED from the server (the task was
/// cancelled) abandons the task at once. `drain()` stops fetching, lets in-flight tasks finish
/// within `drainTimeout`, and hands the rest back with UpdateStatus PENDING.
public final class TaskConsumer: Sendable {
    private struct DrainState {
        var deadline: ContinuousClock.Instant?
        var fetches: [Int: Task<Swapline_V1_FetchTaskResponse, any Error>] = [:]
    }

    private let client: SwaplineClient
    private let processors: [String: any TaskProcessor]
    private let engines: EnginePool
    private let configuration: ConsumerConfiguration
    private let logger: Logger
    private let drainState = Mutex(DrainState())
    /// Hears how each task ended.
    private let metrics: WorkerMetrics?

    public init(
        client: SwaplineClient, processors: [any TaskProcessor], engines: EnginePool, configuration: ConsumerConfiguration,
        logger: Logger, metrics: WorkerMetrics? = nil
    ) {
        self.metrics = metrics
        self.client = client
        self.processors = Dictionary(processors.map { ($0.workflow, $0) }, uniquingKeysWith: { first, _ in first })
        self.engines = engines
        self.configuration = configuration
        self.logger = logger
    }

    /// Works until `drain()` has been called and every slot has finished.
    public func run() async {
        await engines.refreshHealth()
        let monitor = Task { [engines, configuration] in await engines.monitorHealth(every: configuration.healthInterval) }
        await withTaskGroup(of: Void.self) { group in
            for slot in 0..<max(1, configuration.concurrency) {
                group.addTask { await self.runSlot(slot) }
            }
        }
        monitor.cancel()
    }

    /// Stops fetching; in-flight tasks get `drainTimeout` to finish.
    public func drain() {
        let fetches = drainState.withLock { state in
            if state.deadline == nil { state.deadline = .now + configuration.drainTimeout }
            return Array(state.fetches.values)
        }
        for fetch in fetches { fetch.cancel() }
    }

    private var isDraining: Bool { drainState.withLock { $0.deadline != nil } }

    private func runSlot(_ slot: Int) async {
        let request = Swapline_V1_FetchTaskRequest(
            consumerID: "\(configuration.consumerID)#\(slot)", workflows: processors.keys.sorted(),
            waitMs: Int32(configuration.fetchWait.components.seconds * 1000))
        while !isDraining {
            // No healthy engine: leave the work queued for workers that can do it.
            guard engines.hasHealthyEngine else {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            let fetch = Task { [client] in try await client.fetchTask(request) }
            let draining = drainState.withLock { state in
                state.fetches[slot] = fetch
                return state.deadline != nil
            }
            if draining { fetch.cancel() }
            let result = await fetch.result
            drainState.withLock { _ = $0.fetches.removeValue(forKey: slot) }
            switch result {
            case .success(let response):
                guard let task = response.task else { continue }
                if isDraining {
                    await handBack(task, lease: response.leaseID, logger: logger(for: task, consumerID: request.consumerID, leaseID: response.leaseID))
                } else {
                    await work(on: task, lease: response, consumerID: request.consumerID)
                }
            case .failure(let error):
                if isDraining { break }
                logger.warning("FetchTask failed: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// What ended a task's run early.
    private enum Interruption { case aborted, handedBack }

    /// Progress and early-end state of one running task, shared by its heartbeat and reports.
    private final class RunState: Sendable {
        struct Values {
            var progress: Float = 0
            var stage = "fetched"
            var lastReport = ContinuousClock.now
            var interruption: Interruption?
        }
        let values = Mutex(Values())
    }

    /// The worker's logger with the metadata that ties its lines to the task.
    private func logger(for task: Swapline_V1_Task, consumerID: String, leaseID: String) -> Logger {
        var logger = self.logger
        for (key, value) in TaskLogMetadata.metadata(taskID: task.taskID, attempt: task.attempt, consumerID: consumerID, leaseID: leaseID) {
            logger[metadataKey: key] = value
        }
        return logger
    }

    private func work(on task: Swapline_V1_Task, lease: Swapline_V1_FetchTaskResponse, consumerID: String) async {
        let logger = logger(for: task, consumerID: consumerID, leaseID: lease.leaseID)
        guard let processor = processors[task.workflow] else {
            await handBack(task, lease: lease.leaseID, logger: logger)
            return
        }
        let state = RunState()
        let client = self.client
        let taskID = task.taskID
        let leaseID = lease.leaseID
        let report: @Sendable (Float, String) async -> Void = { progress, stage in
            state.values.withLock { values in
                values.progress = progress
                values.stage = stage
                values.lastReport = .now
            }
            do {
                _ = try await client.updateStatus(
                    Swapline_V1_UpdateStatusRequest(taskID: taskID, leaseID: leaseID, status: .processing, progress: progress, message: stage))
            } catch let error as SwaplineClientError where [.aborted, .failedPrecondition, .notFound].contains(error.code) {
                // Cancelled, or the lease is gone: nobody wants this result any more.
                logger.info("\(error); abandoning it")
                state.values.withLock { $0.interruption = .aborted }
            } catch {
                logger.warning("progress report failed: \(error)", metadata: ["stage": "report"])
            }
        }
        logger.info("task started")
        let processing = Task {
            try await processor.process(task, progress: ProgressReporter(report))
        }
        // Heartbeat a third of the way into the lease, and at least every 2 s: the answer to a
        // heartbeat is how a cancellation (ABORTED) reaches a task stuck in a long engine call.
        // The watchdog also enforces the drain deadline.
        // The expiry comes from the network: any Int64, so the subtraction must not overflow.
        let (remainingMs, overflow) = lease.leaseExpiresAtMs.subtractingReportingOverflow(Int64(Date.nowMilliseconds))
        let leaseLength = Duration.milliseconds(overflow ? 1000 : max(1000, remainingMs))
        let heartbeatInterval = min(leaseLength / 3, .seconds(2))
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                let (progress, stage, sinceReport, interrupted) = state.values.withLock {
                    ($0.progress, $0.stage, $0.lastReport.duration(to: .now), $0.interruption != nil)
                }
                if interrupted { processing.cancel(); return }
                if let deadline = self.drainState.withLock({ $0.deadline }), ContinuousClock.now >= deadline {
                    state.values.withLock { $0.interruption = .handedBack }
                    processing.cancel()
                    return
                }
                if sinceReport >= heartbeatInterval { await report(progress, stage) }
            }
        }
        let result = await processing.result
        watchdog.cancel()
        switch (state.values.withLock { $0.interruption }) {
        case .aborted:
            metrics?.taskEnded(.aborted)
            return
        case .handedBack:
            await handBack(task, lease: leaseID, logger: logger)
            return
        case nil:
            break
        }
        do {
            switch result {
            case .success(let taskResult):
                _ = try await client.updateStatus(
                    Swapline_V1_UpdateStatusRequest(taskID: taskID, leaseID: leaseID, status: .completed, progress: 1, result: taskResult))
                // Not the output's URL: a local-storage URL is a bearer secret (docs/security.md).
                logger.info("task completed", metadata: ["outputs": .stringConvertible(taskResult.outputs.count)])
                metrics?.taskEnded(.completed)
            case .failure(let failure):
                let reason = (failure as? TaskFailure)?.description ?? "\(failure)"
                _ = try await client.updateStatus(
                    Swapline_V1_UpdateStatusRequest(taskID: taskID, leaseID: leaseID, status: .failed, error: reason))
                var metadata: Logger.Metadata = [:]
                if let failure = failure as? TaskFailure {
                    metadata["stage"] = .string(failure.stage)
                    if let detail = failure.detail { metadata["detail"] = .string(detail) }
                }
                logger.warning("task failed: \(reason)", metadata: metadata)
                metrics?.taskEnded(.failed)
            }
        } catch {
            logger.warning("final report failed: \(error)", metadata: ["stage": "report"])
            metrics?.taskEnded(.reportFailed)
        }
    }

    /// Gives a leased task back to the queue (not counted as an attempt), so it need not wait
    /// for the lease to expire.
    private func handBack(_ task: Swapline_V1_Task, lease: String, logger: Logger) async {
        metrics?.taskEnded(.handedBack)
        do {
            _ = try await client.updateStatus(Swapline_V1_UpdateStatusRequest(taskID: task.taskID, leaseID: lease, status: .pending))
            logger.info("task handed back")
        } catch {
            logger.warning("hand-back failed (\(error)); its lease will expire", metadata: ["stage": "report"])
        }
    }
}

extension Date {
    static var nowMilliseconds: Double { Date().timeIntervalSince1970 * 1000 }
}
