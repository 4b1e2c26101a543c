import Synchronization
import SwaplineCore

/// A value set once after the closure that needs it was created (a watch token).
final class TokenBox: Sendable {
    private let stored = Mutex<SchedulerToken?>(nil)

    var value: SchedulerToken? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}

/// Lets exactly one of several racing paths (result, timeout, cancellation) proceed.
final class OnceFlag: Sendable {
    private let claimed = Mutex(false)

    /// `true` for the first caller only.
    func claim() -> Bool {
        claimed.withLock { claimed in
            defer { claimed = true }
            return !claimed
        }
    }

    var isClaimed: Bool { claimed.withLock { $0 } }
}
