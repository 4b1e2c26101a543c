import Dispatch
import Foundation
import Synchronization

/// Writes log lines to a file descriptor from one queue, as many lines per `write(2)` as have
/// accumulated, so a thread that logs (an event loop, on the request path: one line per task
/// state change) only appends to a buffer. A line reaches the descriptor at most a few
/// milliseconds later (`gatherTime`); a process that exits normally flushes first (`flush`).
public final class BatchedLineWriter: Sendable {
    /// The process's stderr, where `serve`, `worker` and `engine` log.
    public static let standardError = BatchedLineWriter(handle: .standardError)

    /// Bytes waiting beyond this are dropped, and counted: a descriptor that takes nothing (a
    /// full pipe nobody reads) must not grow the process without bound.
    public static let maxPendingBytes = 8 * 1024 * 1024

    /// How long a drain waits after the first line so that a burst goes out in one write:
    /// short enough that a line reaches the log at once for a person watching.
    static let gatherTime: DispatchTimeInterval = .milliseconds(5)

    private struct Pending {
        var bytes: [UInt8] = []
        var drainScheduled = false
        var droppedLines = 0
    }

    private let handle: FileHandle
    private let maxPendingBytes: Int
    private let pending = Mutex(Pending())
    private let queue = DispatchQueue(label: "swapline.log-writer")

    public init(handle: FileHandle, maxPendingBytes: Int = BatchedLineWriter.maxPendingBytes) {
        self.handle = handle
        self.maxPendingBytes = maxPendingBytes
    }

    /// Queues `line` (newline included) to be written whole, after every line queued before it.
    public func write(_ line: String) {
        let scheduleDrain = pending.withLock { pending -> Bool in
            guard pending.bytes.count + line.utf8.count <= maxPendingBytes else {
                pending.droppedLines += 1
                return false
            }
            pending.bytes.append(contentsOf: line.utf8)
            defer { pending.drainScheduled = true }
            return !pending.drainScheduled
        }
        if scheduleDrain { queue.asyncAfter(deadline: .now() + Self.gatherTime) { self.drain() } }
    }

    /// Returns once every line queued before the call is written.
    public func flush() {
        queue.sync { drain() }
    }

    private func drain() {
        let (bytes, dropped) = pending.withLock { pending in
            defer {
                pending.bytes.removeAll(keepingCapacity: pending.bytes.capacity <= 64 * 1024)
                pending.drainScheduled = false
                pending.droppedLines = 0
            }
            return (pending.bytes, pending.droppedLines)
        }
        var out = bytes
        if dropped > 0 { out += Array("\(dropped) log lines dropped: the log output did not keep up\n".utf8) }
        guard !out.isEmpty else { return }
        // A line that cannot be written (stderr closed) is dropped: logging never stops the process.
        try? handle.write(contentsOf: Data(out))
    }
}
