import Synchronization

/// Hears every transaction a queue backend runs (the SQLite writer's group commits, the
/// PostgreSQL batcher's transactions): how many operations it carried and how long it took,
/// for the store metrics. Set once, before use; until then nothing is told.
public final class StoreCommitObserver: Sendable {
    public typealias Observer = @Sendable (_ operations: Int, _ duration: Duration) -> Void

    private let observer = Mutex<Observer?>(nil)

    public init() {}

    public func set(_ observer: @escaping Observer) {
        self.observer.withLock { $0 = observer }
    }

    /// One transaction of `operations` operations, begun at `started`, committed or failed now.
    public func transactionEnded(operations: Int, started: ContinuousClock.Instant) {
        guard let observer = observer.withLock({ $0 }) else { return }
        observer(operations, started.duration(to: .now))
    }
}
