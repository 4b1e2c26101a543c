import Logging
import SwaplineCore

/// How the server deletes stored result files: when, how often it retries, and with what.
public struct ResultFileDeletion: Sendable {
    /// Deletes one file on whichever configured backend published it.
    public var delete: @Sendable (ResultDeletion) async -> ResultFileDeletionResult
    /// Files of COMPLETED tasks are deleted this long after completion, the task kept
    /// (`--result-lifetime`); `nil`: only with their task, by retention.
    public var lifetime: Duration?
    /// Tries per file before the sweep gives up with an error log (`--result-delete-attempts`).
    public var maxAttempts: Int32 = 8
    /// Wait after the first failed try; doubles per try, at most `maxRetryDelay`
    /// (`--result-delete-retry-base-ms`).
    public var retryBaseDelay: Duration = .seconds(60)
    public var maxRetryDelay: Duration = .seconds(3_600)
    /// How often the server looks for expired results and due deletions.
    public var sweepInterval: Duration = .seconds(2)
    /// Tasks marked, and files taken, per step; a step repeats while it finds a full batch.
    public var batchSize = 100
    /// How long a taken file is withheld from other sweeps: a server that dies while deleting
    /// leaves its files to be retried after this.
    public var claimHold: Duration = .seconds(600)

    public init(delete: @escaping @Sendable (ResultDeletion) async -> ResultFileDeletionResult) {
        self.delete = delete
    }

    /// When to try again after the `attempts`-th failed try.
    func retryDelay(afterAttempts attempts: Int32) -> Duration {
        let doublings = min(Int(max(attempts, 1)) - 1, 30)
        return min(retryBaseDelay * (1 << doublings), maxRetryDelay)
    }
}

/// The server's background deletion of stored result files: marks COMPLETED tasks past the
/// result lifetime (their files are recorded for deletion in the same step), then deletes the
/// recorded files that are due — those and the files of tasks retention purged — and records
/// each outcome: gone, or retried later with backoff, or given up. Every server of a shared
/// store runs it; the store hands each task and file to one of them.
final class ResultFileSweeper: Sendable {
    private let loop: Task<Void, Never>

    init(queue: any TaskQueue, deletion: ResultFileDeletion, clock: WallClock = .system, logger: Logger) {
        loop = Task {
            while !Task.isCancelled {
                if let lifetime = deletion.lifetime {
                    await Self.expireResults(queue: queue, deletion: deletion, lifetime: lifetime, clock: clock, logger: logger)
                }
                await Self.deleteDueFiles(queue: queue, deletion: deletion, clock: clock, logger: logger)
                try? await Task.sleep(for: deletion.sweepInterval)
            }
        }
    }

    /// Ends the sweeps, after the files being deleted now are settled in the store.
    func stop() async {
        loop.cancel()
        await loop.value
    }

    private static func expireResults(
        queue: any TaskQueue, deletion: ResultFileDeletion, lifetime: Duration, clock: WallClock, logger: Logger
    ) async {
        let cutoffMs = clock.nowMs() - lifetime.milliseconds
        var marked = 0
        while !Task.isCancelled {
            let step = await withCheckedContinuation { done in
                queue.expireResultFiles(completedBeforeMs: cutoffMs, limit: deletion.batchSize) { done.resume(returning: $0) }
            }
            switch step {
            case .success(let count):
                marked += count
                if count == deletion.batchSize { continue }
            case .failure(let error):
                logger.warning("result lifetime: could not mark expired results, will retry: \(error)")
            }
            break
        }
        if marked > 0 { logger.info("result lifetime: the files of \(marked) tasks completed over \(lifetime) ago are queued for deletion") }
    }

    private static func deleteDueFiles(queue: any TaskQueue, deletion: ResultFileDeletion, clock: WallClock, logger: Logger) async {
        while !Task.isCancelled {
            let now = clock.nowMs()
            let claimed = await withCheckedContinuation { done in
                queue.claimResultDeletions(
                    dueByMs: now, limit: deletion.batchSize, postponedToMs: now + deletion.claimHold.milliseconds
                ) { done.resume(returning: $0) }
            }
            guard case .success(let files) = claimed else {
                if case .failure(let error) = claimed { logger.warning("result files: could not read the deletions due, will retry: \(error)") }
                return
            }
            guard !files.isEmpty else { return }
            let outcomes = await withTaskGroup(of: ResultDeletionOutcome.self) { group in
                for file in files {
                    group.addTask { await attempt(file, deletion: deletion, clock: clock, logger: logger) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let settled = await withCheckedContinuation { done in queue.settleResultDeletions(outcomes) { done.resume(returning: $0) } }
            if case .failure(let error) = settled {
                // The claimed files come round again once their hold ends.
                logger.warning("result files: could not record \(outcomes.count) deletions, will retry: \(error)")
                return
            }
            if files.count < deletion.batchSize { return }
        }
    }

    private static func attempt(
        _ file: ResultDeletion, deletion: ResultFileDeletion, clock: WallClock, logger: Logger
    ) async -> ResultDeletionOutcome {
        let attempts = file.attempts + 1
        // Never the file's URL: a local-storage or presigned URL is a bearer secret (docs/security.md).
        let metadata: Logger.Metadata = ["task_id": .string(file.taskID), "provider": .string(file.provider), "stage": "delete"]
        switch await deletion.delete(file) {
        case .deleted:
            logger.debug("result files: deleted a result file of \(file.taskID)", metadata: metadata)
            return .finished(id: file.id)
        case .unrecognised:
            logger.notice("result files: no --storage backend holds a result file of \(file.taskID); left as it is", metadata: metadata)
            return .finished(id: file.id)
        case .failed(let reason) where attempts >= deletion.maxAttempts:
            logger.error("result files: gave up deleting a result file of \(file.taskID) after \(attempts) tries: \(reason)", metadata: metadata)
            return .finished(id: file.id)
        case .failed(let reason):
            let delay = deletion.retryDelay(afterAttempts: attempts)
            logger.warning(
                "result files: could not delete a result file of \(file.taskID) (try \(attempts) of \(deletion.maxAttempts)), retrying in \(delay): \(reason)",
                metadata: metadata)
            return .retry(id: file.id, attempts: attempts, atMs: clock.nowMs() + delay.milliseconds)
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
