import NIOConcurrencyHelpers

/// What `GET /jobs/{id}` reports of a job.
public struct EngineJobStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        case queued, running, succeeded, failed
    }
    public var state: State
    /// The latest tqdm bar FaceFusion printed, if any.
    public var progress: FaceFusionProgress?
    public var error: String?
}

/// The jobs the engine has seen: every job in progress, and the most recent finished ones.
public final class EngineJobBoard: Sendable {
    private struct Entries {
        var statuses: [String: EngineJobStatus] = [:]
        var finished: [String] = []
    }
    private let entries = NIOLockedValueBox(Entries())
    /// How many finished jobs stay visible.
    public let history: Int

    public init(history: Int = 256) {
        self.history = history
    }

    /// Registers a new job; `false` when the id is already taken.
    public func add(_ id: String) -> Bool {
        entries.withLockedValue { entries in
            guard entries.statuses[id] == nil else { return false }
            entries.statuses[id] = EngineJobStatus(state: .queued)
            return true
        }
    }

    public func update(_ id: String, _ change: (inout EngineJobStatus) -> Void) {
        entries.withLockedValue { entries in
            guard var status = entries.statuses[id] else { return }
            change(&status)
            entries.statuses[id] = status
            guard status.state == .succeeded || status.state == .failed else { return }
            entries.finished.append(id)
            if entries.finished.count > history { entries.statuses[entries.finished.removeFirst()] = nil }
        }
    }

    public func status(of id: String) -> EngineJobStatus? {
        entries.withLockedValue { $0.statuses[id] }
    }
}
