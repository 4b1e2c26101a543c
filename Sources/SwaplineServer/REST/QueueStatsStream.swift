import NIOCore
import RPCCore
import Synchronization
import SwaplineCore

/// What the stats event stream needs of the server: the scheduler (to hear of changes) and
/// the gate of open watches it counts against, with WatchTask streams (docs/security.md).
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
        switch feed.watches.admit(connection: writer.connectionID) {
        case .failure(let status):
            isStopped = true
            return refuse(.status(status))
        case .success(let permit): self.permit = permit
        }
        let bell = ChangeBell(eventLoop: writer.eventLoop) { [weak self] in self?.queueChanged() }
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
        permit?.release()
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
            let streaming = isStreaming
            stop()
            // Once streaming, the status is sent: the stream just ends (the page reconnects).
            if streaming { writer.writeEnd(trailers: []) } else { refuse(error) }
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

/// Tells an event-loop-bound listener, from any thread, that the queue changed: one hop to
/// its loop per burst of changes, however many arrive before the listener runs.
private final class ChangeBell: Sendable {
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
