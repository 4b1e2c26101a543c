/// The engine's admission control: at most `slots` FaceFusion runs at once (one per GPU),
/// at most `queueLimit` more waiting in arrival order, and a refusal beyond that.
public actor EngineSlots {
    public nonisolated let slots: Int
    public nonisolated let queueLimit: Int
    public private(set) var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(slots: Int, queueLimit: Int) {
        self.slots = slots
        self.queueLimit = queueLimit
    }

    public var queued: Int { waiting.count }

    /// Whether a new job would be refused now.
    public var isFull: Bool { running >= slots && waiting.count >= queueLimit }

    /// Waits for a slot; `false` at once when every slot is busy and the queue is full.
    public func acquire() async -> Bool {
        if running < slots {
            running += 1
            return true
        }
        guard waiting.count < queueLimit else { return false }
        await withCheckedContinuation { waiting.append($0) }
        return true
    }

    /// Frees a slot taken by `acquire()`: the longest-waiting job gets it.
    public func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
