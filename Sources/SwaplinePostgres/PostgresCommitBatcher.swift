import Logging
import PostgresNIO
import SwaplineCore
import Synchronization

/// One operation of the queue, waiting for a transaction: `run` does its reads and writes on
/// the transaction's connection and returns what answers the caller once it committed;
/// `fail` answers the caller when it did not.
struct BatchedOperation: Sendable {
    var run: @Sendable (PostgresConnection) async throws -> @Sendable () -> Void
    var fail: @Sendable (TaskError) -> Void
}

/// Group commit for PostgreSQL: operations that arrive while transactions are busy wait and
/// then share the next transaction (up to `maxBatchSize` of them), so concurrent calls share
/// the round trip and the WAL flush of one COMMIT. At most `maxConcurrentBatches` transactions
/// run at once, each on a pooled connection.
///
/// One operation whose statement PostgreSQL refuses would abort the whole transaction, so a
/// batch that fails that way is run again one operation per transaction: only the culprit
/// fails. A deadlock or serialization failure is retried. Every batch has `timeout` to
/// commit; after it, its callers are told UNAVAILABLE (the transaction may still commit later,
/// as with any timeout against a database).
final class PostgresCommitBatcher: Sendable {
    private struct State {
        var queued: [BatchedOperation] = []
        var runningBatches = 0
        var isClosed = false
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    private let client: PostgresClient
    private let maxConcurrentBatches: Int
    private let maxBatchSize: Int
    private let timeout: Duration
    private let location: PostgresStoreLocation
    /// Hears every transaction attempt (store metrics).
    private let commits: StoreCommitObserver
    private let logger: Logger
    private let state = Mutex(State())
    /// Attempts of a batch that PostgreSQL aborted to break a deadlock.
    private static let attemptsAfterConflict = 3

    init(
        client: PostgresClient, maxConcurrentBatches: Int, maxBatchSize: Int, timeout: Duration,
        location: PostgresStoreLocation, commits: StoreCommitObserver, logger: Logger
    ) {
        self.commits = commits
        self.client = client
        self.maxConcurrentBatches = maxConcurrentBatches
        self.maxBatchSize = maxBatchSize
        self.timeout = timeout
        self.location = location
        self.logger = logger
    }

    func submit(_ operation: BatchedOperation) {
        enum Next { case refuse, wait, run([BatchedOperation]) }
        let next: Next = state.withLock { state in
            guard !state.isClosed else { return .refuse }
            state.queued.append(operation)
            guard state.runningBatches < maxConcurrentBatches else { return .wait }
            state.runningBatches += 1
            return .run(takeBatch(&state))
        }
        switch next {
        case .refuse: operation.fail(TaskError(.unavailable, "the task store is closed"))
        case .wait: break
        case .run(let batch): Task { await self.commitUntilIdle(startingWith: batch) }
        }
    }

    /// Refuses new operations and waits until every queued one was answered.
    func close() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                state.isClosed = true
                guard state.runningBatches > 0 else { return true }
                state.drained.append(done)
                return false
            }
            if idle { done.resume() }
        }
    }

    private func takeBatch(_ state: inout State) -> [BatchedOperation] {
        let count = min(state.queued.count, maxBatchSize)
        defer { state.queued.removeFirst(count) }
        return Array(state.queued.prefix(count))
    }

    private func commitUntilIdle(startingWith first: [BatchedOperation]) async {
        var batch = first
        while !batch.isEmpty {
            await commitAnswering(batch)
            let (next, drained) = state.withLock { state -> ([BatchedOperation], [CheckedContinuation<Void, Never>]) in
                let next = takeBatch(&state)
                guard next.isEmpty else { return (next, []) }
                state.runningBatches -= 1
                guard state.runningBatches == 0 else { return ([], []) }
                defer { state.drained = [] }
                return ([], state.drained)
            }
            for waiter in drained { waiter.resume() }
            batch = next
        }
    }

    /// Commits `batch`, answering its callers UNAVAILABLE if that takes longer than `timeout`.
    private func commitAnswering(_ batch: [BatchedOperation]) async {
        let deadline = Task { [timeout, location] in
            try await Task.sleep(for: timeout)
            let error = TaskError(
                .unavailable,
                "the PostgreSQL store \(location) did not answer within \(timeout); the change may or may not have been saved")
            for operation in batch { operation.fail(error) }
        }
        defer { deadline.cancel() }
        await commit(batch, attempt: 1)
    }

    private func commit(_ batch: [BatchedOperation], attempt: Int) async {
        let started = ContinuousClock.now
        let answers: [@Sendable () -> Void]
        do {
            answers = try await client.withConnection { connection in
                try await connection.inTransaction(logger: logger) { connection in
                    var answers: [@Sendable () -> Void] = []
                    answers.reserveCapacity(batch.count)
                    for operation in batch { answers.append(try await operation.run(connection)) }
                    return answers
                }
            }
        } catch {
            commits.transactionEnded(operations: batch.count, started: started)
            return await recover(batch, attempt: attempt, from: error)
        }
        commits.transactionEnded(operations: batch.count, started: started)
        for answer in answers { answer() }
    }

    /// A transaction of `batch` failed: retries it after a conflict, runs its operations one
    /// by one after a statement error (only the culprit fails), or fails every operation.
    private func recover(_ batch: [BatchedOperation], attempt: Int, from error: any Error) async {
        if PostgresFailure.isRetryable(error) && attempt < Self.attemptsAfterConflict {
            logger.debug("PostgreSQL aborted a batch of \(batch.count) to break a conflict; retrying: \(PostgresFailure.explain(error))")
            await commit(batch, attempt: attempt + 1)
        } else if PostgresFailure.isStatementError(error) && batch.count > 1 {
            for operation in batch { await commit([operation], attempt: 1) }
        } else {
            let failure = PostgresFailure.taskError(error, location: location)
            logger.warning("PostgreSQL store: \(batch.count) operation(s) failed: \(failure.message)")
            for operation in batch { operation.fail(failure) }
        }
    }
}
