import Synchronization

/// Hands a backend's committed changes to the change handler one at a time, in the order the
/// backend queued them, without ever calling the handler under the backend's own lock (the
/// handler may call straight back into the backend, e.g. to claim a task for a waiting
/// consumer).
///
/// A backend calls `enqueue` where its commit order is decided (inside its lock or on its
/// writer thread) and `deliver` after it let go; whichever thread finds nobody delivering
/// delivers everything queued, including what other threads queue meanwhile.
public final class ChangeFeed: Sendable {
    private struct State {
        var handler: (@Sendable (TaskRecord) -> Void)?
        var queued: [TaskRecord] = []
        var isDelivering = false
    }

    private let state = Mutex(State())

    public init() {}

    public func setHandler(_ handler: @escaping @Sendable (TaskRecord) -> Void) {
        state.withLock { $0.handler = handler }
    }

    public func enqueue(_ tasks: [TaskRecord]) {
        guard !tasks.isEmpty else { return }
        state.withLock { state in
            guard state.handler != nil else { return }
            state.queued.append(contentsOf: tasks)
        }
    }

    public func deliver() {
        let first: (@Sendable (TaskRecord) -> Void)? = state.withLock { state in
            guard !state.isDelivering, !state.queued.isEmpty, let handler = state.handler else { return nil }
            state.isDelivering = true
            return handler
        }
        guard let handler = first else { return }
        while true {
            let tasks: [TaskRecord] = state.withLock { state in
                if state.queued.isEmpty { state.isDelivering = false }
                defer { state.queued.removeAll(keepingCapacity: true) }
                return state.queued
            }
            guard !tasks.isEmpty else { return }
            for task in tasks { handler(task) }
        }
    }
}
