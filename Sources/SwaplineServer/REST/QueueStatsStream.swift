import NIOCore
import RPCCore
import Synchronization
import SwaplineCore
import SwaplineMessages

/// What the stats event stream needs of the server: the scheduler (to hear of changes), the
/// gate of open watches it counts against, with WatchTask streams (docs/security.md), and the
/// registry that ends the open streams at shutdown.
struct QueueStatsFeed: Sendable {
    /// At most one read (and event) per stream this often: a busy queue changes far more often
    /// than a person can read figures.
    static let defaultMinimumInterval: TimeAmount = .milliseconds(250)
    /// A comment this often keeps proxies and idle timeouts from closing a quiet stream; the
    /// figures are read again then too (the oldest pending age and the last minute's outcomes
    /// change with time alone, and a change the feed missed shows up).
    static let defaultHeartbeatInterval: TimeAmount = .seconds(15)

    let scheduler: TaskScheduler
    let watches: LongPollGate
    var openStreams = OpenStatsStreams()
    var minimumInterval = defaultMinimumInterval
    var heartbeatInterval = defaultHeartbeatInterval
}

/// The answer of `GET /api/face-swap/stats/events`: the queue's figures (GetQueueStats, as
/// the caller may see them) as server-sent events, the first at once and another after each
/// change of the queue, coalesced to one per `minimumInterval` and never queued behind an
/// event the client has not taken yet (a slow reader gets the newest figures, not a backlog).
/// A `:` comment every `heartbeatInterval`. Confined to the request's event loop.
final class QueueStatsStream {
    /// One read of the figures, as the JSON to send, or the error that ends the stream.
    typealias Read = (@escaping (Result<JSONValue, RESTError>) -> Void) -> Void

    private let feed: QueueStatsFeed
    private let writer: any HTTPStreamWriter
    private let read: Read
    /// Answers an error instead of the stream, when it happens before the first event.
    private let refuse: (RESTError) -> Void
    private var permit: LongPollPermit?
    private var registration: UInt64?
    private var watchToken: SchedulerToken?
    private var heartbeat: Scheduled<Void>?
    private var delayedRead: Scheduled<Void>?
    private var lastReadAt: NIODeadline?
    /// The queue changed since the last read began.
    private var isStale = true
    private var isReading = false
    private var isStreaming = false
    private var isStopped = false

    init(feed: QueueStatsFeed, writer: any HTTPStreamWriter, read: @escaping Read, refuse: @escaping (RESTError) -> Void) {
        self.feed = feed
        self.writer = writer
        self.read = read
        self.refuse = refuse
    }

    /// Takes a place under the watch caps (or refuses with 429) and reads the figures.
    func start() {
        let shutdownBell = LoopBell(eventLoop: writer.eventLoop) { [weak self] in self?.serverShuttingDown() }
        guard let registration = feed.openStreams.add(end: { shutdownBell.ring() }) else {
            isStopped = true
            return refuse(.status(Self.shuttingDown))
        }
        self.registration = registration
        switch feed.watches.admit(connection: writer.connectionID) {
        case .failure(let status):
            stop()
            return refuse(.status(status))
        case .success(let permit): self.permit = permit
        }
        let bell = LoopBell(eventLoop: writer.eventLoop) { [weak self] in self?.queueChanged() }
        watchToken = feed.scheduler.watchQueue { bell.ring() }
        readIfDue()
    }

    /// The client took everything written so far.
    func drained() {
        readIfDue()
    }

    /// The response is over (the client went away, or the stream ended): let go of the
    /// watch, the timers and the place under the caps.
    func stop() {
        guard !isStopped else { return }
        isStopped = true
        delayedRead?.cancel()
        heartbeat?.cancel()
        if let watchToken { feed.scheduler.unwatchQueue(token: watchToken) }
        if let registration { feed.openStreams.remove(registration) }
        permit?.release()
    }

    private static let shuttingDown = GRPCStatus(.unavailable, "the server is shutting down")

    /// Ends the stream at once: it would never end by itself, and an open dashboard would hold
    /// the shutdown for its whole grace. The page reconnects (behind a balancer, elsewhere).
    private func serverShuttingDown() {
        guard !isStopped else { return }
        end(.status(Self.shuttingDown))
    }

    /// Ends the response: once the 200 head is out, just the stream (the page reconnects);
    /// before it, `error` as the answer.
    private func end(_ error: RESTError) {
        let streaming = isStreaming
        stop()
        if streaming { writer.writeEnd(trailers: []) } else { refuse(error) }
    }

    private func queueChanged() {
        isStale = true
        readIfDue()
    }

    /// Reads the figures if they are stale, no read is under way, the last event has left,
    /// and the last read began `minimumInterval` ago (else when it will have).
    private func readIfDue() {
        guard !isStopped, isStale, !isReading, delayedRead == nil, writer.queuedBodyBytes == 0 else { return }
        let now = writer.eventLoop.now
        if let lastReadAt, case let due = lastReadAt + feed.minimumInterval, due > now {
            delayedRead = writer.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [weak self] in
                self?.delayedRead = nil
                self?.readIfDue()
            }
            return
        }
        isStale = false
        isReading = true
        lastReadAt = now
        read { [weak self] result in self?.readFinished(result) }
    }

    private func readFinished(_ result: Result<JSONValue, RESTError>) {
        isReading = false
        guard !isStopped else { return }
        switch result {
        case .failure(let error):
            end(error)
        case .success(let stats):
            if !isStreaming { beginStream() }
            var event = ByteBuffer(string: "data: ")
            event.writeBytes(stats.serialized())
            event.writeString("\n\n")
            writer.writeBody(event)
            readIfDue()
        }
    }

    private func beginStream() {
        isStreaming = true
        writer.writeHead(
            status: 200,
            headers: [HeaderField("content-type", "text/event-stream"), HeaderField("cache-control", "no-cache")],
            endStream: false)
        scheduleHeartbeat()
    }

    private func scheduleHeartbeat() {
        heartbeat = writer.eventLoop.assumeIsolated().scheduleTask(in: feed.heartbeatInterval) { [weak self] in
            guard let self, !isStopped else { return }
            writer.writeBody(ByteBuffer(string: ": heartbeat\n\n"))
            queueChanged()
            scheduleHeartbeat()
        }
    }
}

/// Tells an event-loop-bound listener, from any thread, that something happened (the queue
/// changed, the server shuts down): one hop to its loop per burst of rings, however many
/// arrive before the listener runs.
private final class LoopBell: Sendable {
    private let isRinging = Atomic<Bool>(false)
    private let eventLoop: any EventLoop
    private let listener: NIOLoopBound<() -> Void>

    init(eventLoop: any EventLoop, listener: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.listener = NIOLoopBound(listener, eventLoop: eventLoop)
    }

    func ring() {
        guard !isRinging.exchange(true, ordering: .acquiringAndReleasing) else { return }
        eventLoop.execute { [self] in
            isRinging.store(false, ordering: .releasing)
            listener.value()
        }
    }
}

/// The open stats streams of a server, ended together when it begins to shut down.
final class OpenStatsStreams: Sendable {
    private struct State {
        var isClosed = false
        var lastID: UInt64 = 0
        var ends: [UInt64: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    /// Registers a stream's `end` (called once, from any thread, at shutdown); `nil` when the
    /// server is shutting down already.
    func add(end: @escaping @Sendable () -> Void) -> UInt64? {
        state.withLock { state in
            guard !state.isClosed else { return nil }
            state.lastID += 1
            state.ends[state.lastID] = end
            return state.lastID
        }
    }

    func remove(_ id: UInt64) {
        state.withLock { state in state.ends[id] = nil }
    }

    /// Ends every open stream and refuses new ones.
    func closeAll() {
        let ends = state.withLock { state in
            state.isClosed = true
            defer { state.ends.removeAll() }
            return Array(state.ends.values)
        }
        for end in ends { end() }
    }
}
