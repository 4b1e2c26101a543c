/// The engine's admission control: at most `slots` FaceFusion runs at once (one per GPU),
/// at most `queueLimit` more waiting in arrival order, and a refusal beyond that. Each run
/// holds a numbered slot (0 to `slots` - 1), which picks its GPU.
public actor EngineSlots {
    public nonisolated let slots: Int
    public nonisolated let queueLimit: Int
    private var free: [Int]
    private var waiting: [(ticket: UInt64, continuation: CheckedContinuation<Int?, Never>)] = []
    private var nextTicket: UInt64 = 0

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
    /// queue is full, and `nil` when the waiting task is cancelled (its client went away): the
    /// job leaves the queue and its place goes to the next one.
    public func acquire() async -> Int? {
        guard !Task.isCancelled else { return nil }
        if let slot = free.popLast() { return slot }
        guard waiting.count < queueLimit else { return nil }
        let ticket = nextTicket
        nextTicket += 1
        return await withTaskCancellationHandler {
            await withCheckedContinuation { waiting.append((ticket, $0)) }
        } onCancel: {
            Task { await self.leaveQueue(ticket) }
        }
    }

    private func leaveQueue(_ ticket: UInt64) {
        guard let index = waiting.firstIndex(where: { $0.ticket == ticket }) else { return }
        waiting.remove(at: index).continuation.resume(returning: nil)
    }

    /// Frees `slot`, taken by `acquire()`: the longest-waiting job gets it.
    public func release(_ slot: Int) {
        if waiting.isEmpty {
            free.append(slot)
        } else {
            waiting.removeFirst().continuation.resume(returning: slot)
        }
    }
}
