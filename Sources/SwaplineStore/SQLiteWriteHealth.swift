import Synchronization

/// Whether the SQLite store can currently write, judged from the outcome of its transactions:
/// what `SQLiteTaskQueue.isReachable` (and so health) reports.
///
/// A failed transaction (a lock another process held past the busy timeout, a full disk, an
/// I/O error, a read-only file) marks the store as failing. It counts as writable again once a
/// transaction that wrote rows commits. After a lock failure any committed transaction will
/// do: taking the write lock was what failed, and the lease sweep's transaction every 100 ms
/// (usually empty) retries exactly that, so health recovers without waiting for a client.
final class SQLiteWriteHealth: Sendable {
    private enum State {
        case writable
        case failing(lockContention: Bool)
    }

    private let state = Mutex(State.writable)

    var isWritable: Bool {
        state.withLock { if case .writable = $0 { true } else { false } }
    }

    func committed(wroteRows: Bool) {
        state.withLock { state in
            if case .failing(let lockContention) = state, wroteRows || lockContention { state = .writable }
        }
    }

    func failed(_ error: SQLiteError) {
        state.withLock { $0 = .failing(lockContention: error.isLockContention) }
    }
}
