import Prometheus
import Synchronization

/// A fixed table of counters for hot paths: `increment` is one relaxed atomic add on a slot
/// chosen by index (no lock, no allocation, no label lookup). The counts reach the registry
/// at scrape time, where a label set gets its Prometheus counter the first time its count is
/// above zero, so label combinations that never happen (most method × code pairs) make no
/// series.
public final class CounterTable: Sendable {
    private final class Slot: Sendable {
        let count = Atomic<Int>(0)
    }

    private struct Mirror {
        var counters: [Counter?]
        /// The count each slot had at the last scrape.
        var copied: [Int]
    }

    private let name: String
    private let help: String
    private let labelSets: [[(String, String)]]
    private let slots: [Slot]
    private let mirror: Mutex<Mirror>
    private let registry: MetricsRegistry

    /// One slot per entry of `labelSets`, in order.
    public init(registry: MetricsRegistry, name: String, help: String, labelSets: [[(String, String)]]) {
        self.name = name
        self.help = help
        self.labelSets = labelSets
        self.registry = registry
        slots = labelSets.map { _ in Slot() }
        mirror = Mutex(Mirror(counters: Array(repeating: nil, count: labelSets.count), copied: Array(repeating: 0, count: labelSets.count)))
        registry.onScrape { [self] in copyToRegistry() }
    }

    public func increment(_ slot: Int, by amount: Int = 1) {
        slots[slot].count.wrappingAdd(amount, ordering: .relaxed)
    }

    /// The count of `slot` so far (tests).
    public func count(_ slot: Int) -> Int {
        slots[slot].count.load(ordering: .relaxed)
    }

    private func copyToRegistry() {
        mirror.withLock { mirror in
            for index in slots.indices {
                let count = slots[index].count.load(ordering: .relaxed)
                guard count > mirror.copied[index] else { continue }
                let counter =
                    mirror.counters[index] ?? registry.counter(name: name, labels: labelSets[index], help: help)
                mirror.counters[index] = counter
                counter.increment(by: Int64(count - mirror.copied[index]))
                mirror.copied[index] = count
            }
        }
    }
}
