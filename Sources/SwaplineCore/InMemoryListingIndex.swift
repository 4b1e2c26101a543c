/// The in-memory queue's indexes for ListTasks and GetQueueStats, kept by its `store` and
/// `forget` under the queue's lock: creation order (all tasks and per owner), counts per
/// owner, workflow and state, the PENDING tasks by age, and the last minute's finishes.
/// Stale entries are dropped lazily and compacted once they outnumber the live ones.
struct InMemoryListingIndex {
    struct CreationKey: Comparable {
        var createdAtMs: Int64
        var taskID: String

        static func < (a: Self, b: Self) -> Bool {
            a.createdAtMs != b.createdAtMs ? a.createdAtMs < b.createdAtMs : a.taskID < b.taskID
        }
    }

    /// Task keys in creation order, oldest first; deleted tasks linger until compaction.
    struct CreationOrder {
        private(set) var keys: [CreationKey] = []
        private var deleted = 0

        mutating func insert(_ key: CreationKey) {
            if let last = keys.last, key < last {
                keys.insert(key, at: Self.firstIndex(in: keys, notBefore: key))
            } else {
                keys.append(key)
            }
        }

        mutating func noteDeleted(isLive: (CreationKey) -> Bool) {
            deleted += 1
            guard deleted > keys.count / 2 + 1_024 else { return }
            keys.removeAll { !isLive($0) }
            deleted = 0
        }

        /// The position of the first key that is not before `key`.
        static func firstIndex(in keys: [CreationKey], notBefore key: CreationKey) -> Int {
            var low = 0, high = keys.count
            while low < high {
                let middle = (low + high) / 2
                if keys[middle] < key { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    struct Finish {
        var atMs: Int64
        var owner: String
        var workflow: String
        var failed: Bool
    }

    /// The window of finishes kept for the statistics.
    static let finishWindowMs: Int64 = 60_000

    var all = CreationOrder()
    var byOwner: [String: CreationOrder] = [:]
    var counts: [String: [TaskStoreStats.Key: Int64]] = [:]
    var pendingByCreation = PriorityHeap<CreationKey>(by: <)
    var finishes: [Finish] = []
    private var firstFinish = 0

    mutating func stored(_ task: TaskRecord, replacing old: TaskRecord?, pendingCount: Int, tasks: [String: TaskRecord]) {
        if let old {
            uncount(old)
        } else {
            let key = CreationKey(createdAtMs: task.createdAtMs, taskID: task.taskID)
            all.insert(key)
            byOwner[task.owner, default: CreationOrder()].insert(key)
        }
        counts[task.owner, default: [:]][TaskStoreStats.Key(workflow: task.workflow, state: task.state), default: 0] += 1
        if task.state == .pending, old?.state != .pending {
            pendingByCreation.push(CreationKey(createdAtMs: task.createdAtMs, taskID: task.taskID))
            if pendingByCreation.count > 2 * pendingCount + 1_024 {
                pendingByCreation.removeAll { key in tasks[key.taskID].map { $0.state != .pending } ?? true }
            }
        }
        if task.state.isTerminal, old.map({ !$0.state.isTerminal }) ?? true {
            finishes.append(Finish(atMs: task.updatedAtMs, owner: task.owner, workflow: task.workflow, failed: task.state == .failed))
            dropFinishes(before: task.updatedAtMs - Self.finishWindowMs)
        }
    }

    mutating func forgot(_ task: TaskRecord, tasks: [String: TaskRecord]) {
        uncount(task)
        all.noteDeleted { tasks[$0.taskID] != nil }
        byOwner[task.owner]?.noteDeleted { tasks[$0.taskID] != nil }
    }

    private mutating func uncount(_ task: TaskRecord) {
        let key = TaskStoreStats.Key(workflow: task.workflow, state: task.state)
        counts[task.owner]?[key]! -= 1
        if counts[task.owner]?[key] == 0 { counts[task.owner]![key] = nil }
        if counts[task.owner]?.isEmpty == true { counts[task.owner] = nil }
    }

    private mutating func dropFinishes(before cutoffMs: Int64) {
        while firstFinish < finishes.count, finishes[firstFinish].atMs < cutoffMs { firstFinish += 1 }
        if firstFinish > 1_024, firstFinish > finishes.count / 2 {
            finishes.removeFirst(firstFinish)
            firstFinish = 0
        }
    }

    /// Walks `scope`'s creation order from newest to oldest, from the query's cursor and
    /// creation bounds on, and collects up to `limit + 1` matching tasks.
    func page(_ query: TaskListQuery, tasks: [String: TaskRecord]) -> TaskPage {
        let order: [CreationKey]
        switch query.scope {
        case .everyone: order = all.keys
        case .owner(let owner): order = byOwner[owner]?.keys ?? []
        }
        var end = order.count
        if let before = query.filter.createdBeforeMs {
            end = min(end, CreationOrder.firstIndex(in: order, notBefore: CreationKey(createdAtMs: before, taskID: "")))
        }
        if let after = query.after {
            let cursor = CreationKey(createdAtMs: after.createdAtMs, taskID: after.taskID)
            end = min(end, CreationOrder.firstIndex(in: order, notBefore: cursor))
        }
        var found: [TaskRecord] = []
        var index = end - 1
        while index >= 0, found.count <= query.limit {
            let key = order[index]
            if let after = query.filter.createdAfterMs, key.createdAtMs < after { break }
            if let task = tasks[key.taskID], query.scope.includes(task), query.filter.matches(task) { found.append(task) }
            index -= 1
        }
        return TaskPage(candidates: found, limit: query.limit)
    }

    mutating func stats(
        scope: TaskScope, workflow: String?, finishedSinceMs: Int64, tasks: [String: TaskRecord]
    ) -> TaskStoreStats {
        var stats = TaskStoreStats()
        let owners: [[TaskStoreStats.Key: Int64]]
        switch scope {
        case .everyone: owners = Array(counts.values)
        case .owner(let owner): owners = counts[owner].map { [$0] } ?? []
        }
        for ownerCounts in owners {
            for (key, count) in ownerCounts where workflow.map({ $0 == key.workflow }) ?? true { stats.counts[key, default: 0] += count }
        }
        while let top = pendingByCreation.top, tasks[top.taskID]?.state != .pending { pendingByCreation.pop() }
        if scope == .everyone, workflow == nil {
            stats.oldestPendingCreatedAtMs = pendingByCreation.top?.createdAtMs
        } else {
            stats.oldestPendingCreatedAtMs = pendingByCreation.elements.lazy.compactMap { key -> Int64? in
                guard let task = tasks[key.taskID], task.state == .pending, scope.includes(task),
                    workflow.map({ $0 == task.workflow }) ?? true
                else { return nil }
                return task.createdAtMs
            }.min()
        }
        for finish in finishes[firstFinish...] where finish.atMs >= finishedSinceMs {
            guard scope == .everyone || scope == .owner(finish.owner), workflow.map({ $0 == finish.workflow }) ?? true else { continue }
            stats.finishedSince += 1
            if finish.failed { stats.failedSince += 1 }
        }
        return stats
    }
}
