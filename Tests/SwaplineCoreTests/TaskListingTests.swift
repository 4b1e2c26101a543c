import SwaplineCore
import Testing

@Suite struct TaskListingTests {
    @Test func historyTextRoundTripsEveryNote() {
        let history = [
            TaskTransition(state: .pending, atMs: 1, attempt: 0, note: "created"),
            TaskTransition(state: .processing, atMs: 2, attempt: 1, note: ""),
            TaskTransition(state: .failed, atMs: 3, attempt: 1, note: "tab\there\nnew line \\n literal, ünïcode 🚀"),
        ]
        #expect(TaskHistory.parse(TaskHistory.text(history)) == history)
        #expect(TaskHistory.text([]) == "")
        #expect(TaskHistory.parse("") == [])
        #expect(TaskHistory.parse("NOT_A_STATE\t1\t0\tx\nPENDING\t5\t0\tkept") == [TaskTransition(state: .pending, atMs: 5, attempt: 0, note: "kept")])
    }

    @Test func historyKeepsTheNewestEntriesAndCutsLongNotes() throws {
        let rules = TaskRules(leaseDurationMs: 10, maxAttempts: 1_000)
        var task = TaskRules.created(TaskRecord(
            taskID: "task_1", workflow: "face_swap", environment: "face_swap", targetPort: 8000,
            params: FaceSwapParameters(sourceURL: "https://a/s.jpg", targetURL: "https://a/t.jpg", resolution: "1024x1024", model: "m"),
            state: .pending, sourceChannel: "grpc", createdAtMs: 0, updatedAtMs: 0))
        for lease in 1...40 {
            task = rules.claim(task, consumerID: "c\(lease)", leaseID: "l\(lease)", now: Int64(lease * 100))!
            task = rules.expire(task, now: Int64(lease * 100 + 50))!
        }
        #expect(task.history.count == TaskHistory.maxEntries)
        #expect(task.history.last == TaskTransition(state: .pending, atMs: 4_050, attempt: 40, note: "lease expired"))
        #expect(task.history.first?.note == "leased by c9")
        task = rules.claim(task, consumerID: "c", leaseID: "l", now: 5_000)!
        let error = String(repeating: "é", count: 600)
        task = try rules.apply(StatusUpdate(taskID: "task_1", leaseID: "l", state: .failed, error: error), to: task, now: 5_001).get()
        let note = task.history.last!.note
        #expect(note.hasSuffix("…") && note.utf8.count <= TaskHistory.maxNoteBytes + "…".utf8.count && note.hasPrefix("éé"))
        #expect(task.error == error)
    }

    @Test func aPageTokenIsOnlyAcceptedWithItsFilters() throws {
        let filter = TaskListFilter(states: [.failed, .pending], workflow: "face_swap")
        let cursor = TaskListCursor(createdAtMs: 1_700_000_000_123, taskID: "task_01J9:odd")
        let token = TaskPageToken.make(after: cursor, filter: filter)
        #expect(try TaskPageToken.cursor(token, filter: TaskListFilter(states: [.pending, .failed], workflow: "face_swap")).get() == cursor)
        for other in [TaskListFilter(states: [.failed], workflow: "face_swap"), TaskListFilter(states: [.failed, .pending])] {
            guard case .failure(let error) = TaskPageToken.cursor(token, filter: other) else {
                Issue.record("a token for other filters was accepted")
                continue
            }
            #expect(error.kind == .invalidArgument && error.message.contains("other filters"))
        }
        for malformed in ["", "zz", "abc", token + "0", token.uppercased()] {
            guard case .failure(let error) = TaskPageToken.cursor(malformed, filter: filter) else {
                Issue.record("malformed token \(malformed) was accepted")
                continue
            }
            #expect(error.kind == .invalidArgument)
        }
    }
}
