/// A binary min-heap ordered by `areInIncreasingOrder`. The scheduler uses it with lazy
/// deletion: entries that no longer match their task are skipped when they surface.
struct PriorityHeap<Element> {
    private var storage: [Element] = []
    private let areInIncreasingOrder: (Element, Element) -> Bool

    init(by areInIncreasingOrder: @escaping (Element, Element) -> Bool) {
        self.areInIncreasingOrder = areInIncreasingOrder
    }

    var top: Element? { storage.first }

    var count: Int { storage.count }

    /// Every entry, in no particular order.
    var elements: [Element] { storage }

    /// Drops every entry `isStale` picks, in one pass (a sorted array is a valid heap): for an
    /// index whose stale entries would otherwise wait long to surface.
    mutating func removeAll(where isStale: (Element) -> Bool) {
        storage.removeAll(where: isStale)
        storage.sort(by: areInIncreasingOrder)
    }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard areInIncreasingOrder(storage[child], storage[parent]) else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func pop() -> Element? {
        guard !storage.isEmpty else { return nil }
        storage.swapAt(0, storage.count - 1)
        let element = storage.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < storage.count, areInIncreasingOrder(storage[left], storage[smallest]) { smallest = left }
            if right < storage.count, areInIncreasingOrder(storage[right], storage[smallest]) { smallest = right }
            if smallest == parent { break }
            storage.swapAt(parent, smallest)
            parent = smallest
        }
        return element
    }
}
