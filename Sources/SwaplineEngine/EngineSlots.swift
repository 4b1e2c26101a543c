/// The engine's admission control: at most `slots` FaceFusion runs at once (one per GPU),
/// at most `queueLimit` more waiting in arrival order, and a refusal beyond that. Each run
/// holds a numbered slot (0 to `slots` - 1), which picks its GPU.
public actor EngineSlots {
    public nonisolated let slots: Int
    public nonisolated let queueLimit: Int
    private var free: [Int]
    private var waiting: [CheckedContinuation<Int, Never>] = []

    public init(slots: Int, queueLimit: Int) {
        self.slots = slots
        self.queueLimit = queueLimit
        self.free = Array((0..<slots).reversed())
    }

    public var running: Int { slots - free.count }

    public var queued: Int { waiting.count }

    /// Whether a new job would be refused now.
    public var isFull: Bool { free.isEmpty && waiting.count >= queueLimit }

    /// Waits for a slot and returns its number; `nil` at once when every slot is busy and the
    /// queue is full.
    public func acquire() async -> Int? {
        if let slot = free.popLast() { return slot }
        guard waiting.count < queueLimit else { return nil }
        return await withCheckedContinuation { waiting.append($0) }
    }

    /// Frees `slot`, taken by `acquire()`: the longest-waiting job gets it.
    public func release(_ slot: Int) {
        if waiting.isEmpty {
            free.append(slot)
        } else {
            waiting.removeFirst().resume(returning: slot)
        }
    }
}
