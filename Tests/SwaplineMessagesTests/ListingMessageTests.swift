import NIOCore
import SwaplineMessages
import Testing

@Suite struct ListingMessageTests {
    @Test func taskHistoryRoundTrips() throws {
        var task = fullTask
        task.history = [
            Swapline_V1_TaskTransition(status: .pending, atMs: 1, attempt: 0, note: ""),
            Swapline_V1_TaskTransition(status: .processing, atMs: 2, attempt: 1, note: "worker-\(unicode)"),
            Swapline_V1_TaskTransition(status: .unrecognized(9), atMs: Int64.max, attempt: Int32.max, note: "x"),
        ]
        #expect(try roundTrip(task) == task)
    }

    @Test func listTasksRequestRoundTrips() throws {
        let request = Swapline_V1_ListTasksRequest(
            statuses: [.pending, .failed, .unrecognized(42)], workflow: "face_swap", createdAfterMs: 1, createdBeforeMs: Int64.max,
            idempotencyKey: "key-\(unicode)", pageSize: 1000, pageToken: "opaque")
        #expect(try roundTrip(request) == request)
        #expect(try roundTrip(Swapline_V1_ListTasksRequest()) == Swapline_V1_ListTasksRequest())
    }

    @Test func listTasksResponseRoundTrips() throws {
        let response = Swapline_V1_ListTasksResponse(tasks: [fullTask, Swapline_V1_Task(taskID: "b")], nextPageToken: "next")
        #expect(try roundTrip(response) == response)
    }

    @Test func queueStatsRoundTrip() throws {
        let stats = Swapline_V1_QueueStats(
            counts: [.init(workflow: "face_swap", status: .pending, count: 7), .init(workflow: unicode, status: .failed, count: Int64.max)],
            oldestPendingAgeMs: 1234, waitingConsumers: 3, activeLeases: 2, finishedLastMinute: 10, failedLastMinute: 4,
            failureShareLastMinute: 0.4, generatedAtMs: 1_738_238_400_000)
        #expect(try roundTrip(stats) == stats)
        #expect(try roundTrip(Swapline_V1_GetQueueStatsRequest(workflow: "face_swap")).workflow == "face_swap")
    }

    @Test func tooManyStatusesAreRefused() throws {
        let request = Swapline_V1_ListTasksRequest(statuses: Array(repeating: .pending, count: MessageLimits.statusesPerList + 1))
        #expect(throws: ProtoDecodingError.self) { try roundTrip(request) }
        let atLimit = Swapline_V1_ListTasksRequest(statuses: Array(repeating: .pending, count: MessageLimits.statusesPerList))
        #expect(try roundTrip(atLimit) == atLimit)
    }

    @Test func longPageTokenIsRefused() {
        let request = Swapline_V1_ListTasksRequest(pageToken: String(repeating: "a", count: MessageLimits.pageTokenBytes + 1))
        #expect(throws: ProtoDecodingError.self) { try roundTrip(request) }
    }
}
