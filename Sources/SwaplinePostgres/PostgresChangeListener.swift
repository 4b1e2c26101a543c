import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// One dedicated connection that LISTENs on the task change channel and hands each
/// notification's payload on, in the order PostgreSQL sends them (commit order).
///
/// It is also how the queue knows whether the database is reachable: while the connection is
/// up and answers a probe every `probeInterval`, the store counts as reachable. A lost
/// connection is retried with exponential backoff (100 ms doubling to 5 s) until `stop`.
/// Notifications sent while it was down are lost; the scheduler's periodic re-check covers
/// them.
final class PostgresChangeListener: Sendable {
    struct Status: Sendable {
        var isConnected = false
        var hasConnected = false
        /// Why the last connection attempt or connection failed, for error messages.
        var lastProblem = "not connected yet"
    }

    private let configuration: PostgresConnection.Configuration
    private let channel: String
    private let probeInterval: Duration
    private let logger: Logger
    private let status = Mutex(Status())
    private let loop = Mutex<Task<Void, Never>?>(nil)
    private let onPayload: @Sendable (String) async -> Void

    init(
        configuration: PostgresConnection.Configuration, channel: String, probeInterval: Duration, logger: Logger,
        onPayload: @escaping @Sendable (String) async -> Void
    ) {
        self.configuration = configuration
        self.channel = channel
        self.probeInterval = probeInterval
        self.logger = logger
        self.onPayload = onPayload
    }

    var current: Status { status.withLock { $0 } }

    /// Connects and listens; returns once the first LISTEN is in place or the first attempt
    /// failed (then it keeps retrying in the background).
    func start() async {
        let firstAttempt = AsyncStream<Void>.makeStream()
        let task = Task { [self] in
            await run(firstAttemptDone: firstAttempt.continuation)
        }
        loop.withLock { $0 = task }
        for await _ in firstAttempt.stream { break }
    }

    func stop() async {
        let task = loop.withLock { task -> Task<Void, Never>? in defer { task = nil }; return task }
        task?.cancel()
        await task?.value
    }

    private func run(firstAttemptDone: AsyncStream<Void>.Continuation) async {
        var backoff = Duration.milliseconds(100)
        var connectionID = 0
        while !Task.isCancelled {
            connectionID += 1
            do {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: connectionID, logger: logger)
                do {
                    try await connection.listen(on: channel) { notifications in
                        backoff = .milliseconds(100)
                        setConnected(true, problem: nil)
                        firstAttemptDone.finish()
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask { [self] in
                                for try await notification in notifications { await onPayload(notification.payload) }
                                throw ListenerError("the server ended the notification stream")
                            }
                            group.addTask { [self] in try await probe(connection) }
                            // Either one ending means the connection is no longer trustworthy.
                            defer { group.cancelAll() }
                            try await group.next()
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { break }
                setConnected(false, problem: PostgresFailure.explain(error))
            }
            firstAttemptDone.finish()
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        status.withLock { $0 = Status(isConnected: false, lastProblem: "the store is closed") }
    }

    /// Runs a trivial query every `probeInterval`; throws when one fails or takes more than
    /// twice the interval (a database that stopped answering without closing the socket).
    private func probe(_ connection: PostgresConnection) async throws {
        while true {
            try await Task.sleep(for: probeInterval)
            let answered = Mutex(false)
            let deadline = Task { [probeInterval] in
                try await Task.sleep(for: probeInterval * 2)
                if !answered.withLock({ $0 }) { try? await connection.close() }
            }
            defer { deadline.cancel() }
            try await connection.query("SELECT 1", logger: logger)
            answered.withLock { $0 = true }
        }
    }

    private func setConnected(_ connected: Bool, problem: String?) {
        let (changed, first) = status.withLock { status -> (Bool, Bool) in
            let changed = status.isConnected != connected
            let first = !status.hasConnected
            status.isConnected = connected
            status.hasConnected = status.hasConnected || connected
            if let problem { status.lastProblem = problem }
            return (changed, first)
        }
        guard changed else { return }
        if connected {
            logger.notice(first ? "PostgreSQL store: listening for task changes" : "PostgreSQL store reachable again: listening for task changes")
        } else {
            logger.error("PostgreSQL store unreachable: \(current.lastProblem); retrying")
        }
    }
}

private struct ListenerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
