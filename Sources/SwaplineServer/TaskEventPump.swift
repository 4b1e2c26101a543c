import RPCCore
import Synchronization
import SwaplineCore
import SwaplineMessages

/// Sends a watched task's changes to one WatchTask stream at the pace the client reads.
///
/// At most one event is queued on the stream at a time; changes that arrive meanwhile
/// replace each other, so a slow client skips intermediate states instead of making the
/// server buffer without bound (and never slows the scheduler, whose callback only swaps a
/// value under a lock).
final class TaskEventPump: Sendable {
    private struct State {
        /// The newest change not yet sent.
        var waiting: TaskRecord?
        /// Version of the last record sent or waiting: older or equal ones are repeats.
        var newestVersion: Int64 = 0
        /// An event is queued on the stream and has not drained yet.
        var isSending = false
        var isFinished = false
    }

    private let call: ServerCall
    private let state = Mutex(State())
    private let onFinish: @Sendable () -> Void

    init(call: ServerCall, onFinish: @escaping @Sendable () -> Void) {
        self.call = call
        self.onFinish = onFinish
    }

    /// Offers a change (from the scheduler's watch callback, any thread).
    func offer(_ record: TaskRecord) {
        let next: TaskRecord? = state.withLock { state in
            guard !state.isFinished, record.version > state.newestVersion else { return nil }
            state.newestVersion = record.version
            if state.isSending {
                state.waiting = record
                return nil
            }
            state.isSending = true
            return record
        }
        if let next { send(next) }
    }

    var isFinished: Bool { state.withLock { $0.isFinished } }

    /// The client went away: stop.
    func cancel() {
        let wasRunning = state.withLock { state in
            defer { state.isFinished = true }
            return !state.isFinished
        }
        if wasRunning { onFinish() }
    }

    private func send(_ record: TaskRecord) {
        call.send(message: Swapline_V1_TaskEvent(task: TaskMessages.message(record), sequence: record.version))
        if record.state.isTerminal {
            state.withLock { $0.isFinished = true }
            call.finish(.ok)
            onFinish()
            return
        }
        call.whenOutboundDrained { [self] in drained() }
    }

    private func drained() {
        let next: TaskRecord? = state.withLock { state in
            guard !state.isFinished, let waiting = state.waiting else {
                state.isSending = false
                return nil
            }
            state.waiting = nil
            return waiting
        }
        if let next { send(next) }
    }
}
