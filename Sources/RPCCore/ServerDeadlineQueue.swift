import NIOCore
import Synchronization

/// The server's maximum unary deadline, enforced without a timer per call.
///
/// Every unary call without a shorter `grpc-timeout` of its own gets the same maximum, so on one
/// event loop their deadlines come in the order the calls began: a FIFO per loop, checked by one
/// repeating task every `checkInterval`, ends those past their deadline (at most that late). A
/// NIO timer per call cost more than half of a ~22 % throughput drop (it is allocated per call
/// and cancelled by a search of the loop's timer heap; docs/benchmarks.md).
final class ServerDeadlineQueue {
    static let checkInterval: TimeAmount = .seconds(1)

    /// One queue per event loop, made on first use; the entry holds its loop, so an identifier
    /// is never reused while it is in the table.
    private static let queues = Mutex<[ObjectIdentifier: NIOLoopBound<ServerDeadlineQueue>]>([:])

    private var waiting: [(deadline: NIODeadline, stream: Weak)] = []
    private var head = 0

    private struct Weak {
        weak var stream: GRPCServerStream?
    }

    /// The queue of `loop`; called on `loop`.
    static func on(_ loop: any EventLoop) -> ServerDeadlineQueue {
        let bound = queues.withLock { queues in
            if let existing = queues[ObjectIdentifier(loop)] { return existing }
            let made = NIOLoopBound(ServerDeadlineQueue(), eventLoop: loop)
            queues[ObjectIdentifier(loop)] = made
            loop.scheduleRepeatedTask(initialDelay: checkInterval, delay: checkInterval) { _ in
                made.value.endExpired(now: loop.now)
            }
            return made
        }
        return bound.value
    }

    /// `stream` ends with DEADLINE_EXCEEDED at `deadline` (within `checkInterval`) unless it has
    /// ended by then. Deadlines must not be earlier than the ones added before.
    func add(_ stream: GRPCServerStream, deadline: NIODeadline) {
        waiting.append((deadline, Weak(stream: stream)))
    }

    private func endExpired(now: NIODeadline) {
        while head < waiting.count, waiting[head].deadline <= now {
            let stream = waiting[head].stream.stream
            waiting[head].stream.stream = nil
            head += 1
            stream?.serverDeadlinePassed()
        }
        // Drop the consumed front now and then rather than on every pop.
        if head > 1024, head * 2 > waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
    }
}
