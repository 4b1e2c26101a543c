import SwaplineCore
import Testing

/// ListTasks, GetQueueStats and Task.history on every backend.
extension TaskQueueContractTests {
    private func owned(_ number: Int, by owner: String, workflow: String = "face_swap", key: String? = nil) -> TaskRecord {
        var task = TaskRules.created(pending(number, workflow: workflow, key: key))
        task.owner = owner
        return task
    }

    /// Every page of `query`, walked with the cursors the backend answers; `between` runs
    /// after each page.
    private func walk(_ queue: any TaskQueue, _ query: TaskListQuery, between: () async throws -> Void = {}) async throws -> [String] {
        var query = query
        var ids: [String] = []
        while true {
            let page = try await queue.list(query).get()
            #expect(page.tasks.count <= query.limit)
            ids += page.tasks.map(\.taskID)
            guard let next = page.next else { return ids }
            query.after = next
            try await between()
        }
    }

    @Test(arguments: QueueBackend.available) func pagesListEveryTaskOnceNewestFirstWhileTasksArrive(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for number in 1...23 { _ = try await queue.create(owned(number, by: "")).get() }
            // Task 5 and 6 share a creation time: the id decides.
            var twin = owned(106, by: "")
            twin.createdAtMs = pending(5).createdAtMs
            _ = try await queue.create(twin).get()
            var arriving = 200
            let ids = try await walk(queue, TaskListQuery(scope: .everyone, limit: 5)) {
                arriving += 1
                _ = try await queue.create(owned(arriving, by: "")).get()
            }
            let expected = (1...23).reversed().flatMap { $0 == 5 ? ["task_5", "task_106"] : ["task_\($0)"] }
            #expect(ids == expected)
        }
    }

    @Test(arguments: QueueBackend.available) func filtersAndOwnersNarrowTheListing(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            for number in 1...6 { _ = try await queue.create(owned(number, by: number.isMultiple(of: 2) ? "bob" : "ann")).get() }
            _ = try await queue.create(owned(7, by: "ann", workflow: "other", key: "k-7")).get()
            let grant = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())  // task 1
            _ = try await queue.update(StatusUpdate(taskID: grant.task.taskID, leaseID: grant.lease.id, state: .failed, error: "boom")).get()
            _ = try await queue.cancel("task_2").get()

            func ids(_ scope: TaskScope, _ filter: TaskListFilter) async throws -> [String] {
                try await walk(queue, TaskListQuery(scope: scope, filter: filter, limit: 2))
            }
            #expect(try await ids(.owner("ann"), TaskListFilter()) == ["task_7", "task_5", "task_3", "task_1"])
            #expect(try await ids(.owner("bob"), TaskListFilter(states: [.pending])) == ["task_6", "task_4"])
            #expect(try await ids(.everyone, TaskListFilter(states: [.failed, .cancelled])) == ["task_2", "task_1"])
            #expect(try await ids(.everyone, TaskListFilter(workflow: "other")) == ["task_7"])
            #expect(try await ids(.owner("ann"), TaskListFilter(idempotencyKey: "k-7")) == ["task_7"])
            #expect(try await ids(.owner("bob"), TaskListFilter(idempotencyKey: "k-7")) == [])
            #expect(try await ids(.everyone, TaskListFilter(idempotencyKey: "k-7")) == ["task_7"])
            #expect(try await ids(.owner("ann"), TaskListFilter(states: [.pending], idempotencyKey: "k-7")) == ["task_7"])
            #expect(try await ids(.owner("ann"), TaskListFilter(states: [.failed], idempotencyKey: "k-7")) == [])
            let third = pending(3).createdAtMs, fifth = pending(5).createdAtMs
            #expect(try await ids(.everyone, TaskListFilter(createdAfterMs: third, createdBeforeMs: fifth)) == ["task_4", "task_3"])
        }
    }

    @Test(arguments: QueueBackend.available) func statsCountByWorkflowStateAndOwner(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            let start = clock.clock.nowMs()
            for number in 1...4 { _ = try await queue.create(owned(number, by: number <= 3 ? "ann" : "bob")).get() }
            let fifth = owned(5, by: "bob", workflow: "other")
            _ = try await queue.create(fifth).get()
            clock.advance(ms: 100)
            let first = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())  // ann's task 1
            _ = try await queue.update(StatusUpdate(taskID: first.task.taskID, leaseID: first.lease.id, state: .failed, error: "boom")).get()
            let second = try #require(try await queue.claim(["face_swap"], consumer: "c1").get())  // ann's task 2
            _ = try await queue.update(
                StatusUpdate(taskID: second.task.taskID, leaseID: second.lease.id, state: .completed, output: TaskOutput(outputURL: "u"))
            ).get()
            _ = try await queue.claim(["face_swap"], consumer: "c2").get()  // ann's task 3, leased
            _ = try await queue.cancel("task_4").get()

            let all = try await queue.stats(.everyone, since: start).get()
            let key = TaskStoreStats.Key.init
            #expect(all.counts == [
                key("face_swap", .failed): 1, key("face_swap", .completed): 1, key("face_swap", .processing): 1,
                key("face_swap", .cancelled): 1, key("other", .pending): 1,
            ])
            #expect(all.oldestPendingCreatedAtMs == fifth.createdAtMs)
            #expect(all.finishedSince == 3)
            #expect(all.failedSince == 1)
            let ann = try await queue.stats(.owner("ann"), since: start).get()
            #expect(ann.counts == [key("face_swap", .failed): 1, key("face_swap", .completed): 1, key("face_swap", .processing): 1])
            #expect(ann.oldestPendingCreatedAtMs == nil)
            #expect(ann.finishedSince == 2)
            let bob = try await queue.stats(.owner("bob"), workflow: "face_swap", since: start).get()
            #expect(bob.counts == [key("face_swap", .cancelled): 1])
            #expect(bob.finishedSince == 1 && bob.failedSince == 0)
            // Finishes before the window are not counted.
            #expect(try await queue.stats(.everyone, since: clock.clock.nowMs() + 1).get().finishedSince == 0)
        }
    }

    @Test(arguments: QueueBackend.available) func everyChangeOfStateIsInTheStoredHistory(_ backend: QueueBackend) async throws {
        try await withQueue(backend) { queue, _ in
            _ = try await queue.create(owned(1, by: "")).get()
            let lease = try #require(try await queue.claim(["face_swap"], consumer: "worker-1").get())
            _ = try await queue.update(StatusUpdate(taskID: "task_1", leaseID: lease.lease.id, state: .processing, progress: 0.5)).get()
            clock.advance(ms: 5_000)
            #expect(try await queue.expireLeases(limit: 10).get() == 1)
            let again = try #require(try await queue.claim(["face_swap"], consumer: "worker-2").get())
            _ = try await queue.update(StatusUpdate(taskID: "task_1", leaseID: again.lease.id, state: .failed, error: "engine: boom\nline 2")).get()
            let history = try #require(try await queue.task(id: "task_1").get()).history
            #expect(history.map(\.state) == [.pending, .processing, .pending, .processing, .failed])
            #expect(history.map(\.attempt) == [0, 1, 1, 2, 2])
            #expect(history.map(\.note) == ["created", "leased by worker-1", "lease expired", "leased by worker-2", "engine: boom\nline 2"])
        }
    }
}
