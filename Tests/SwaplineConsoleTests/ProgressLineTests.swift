import SwaplineConsole
import SwaplineMessages
import Testing

@Suite struct ProgressLineTests {
    func task(_ status: Swapline_V1_TaskStatus, progress: Float = 0, attempt: Int32 = 0, created: Int64 = 0, updated: Int64 = 0)
        -> Swapline_V1_Task
    {
        var task = Swapline_V1_Task()
        task.taskID = "task_1"
        task.status = status
        task.progress = progress
        task.attempt = attempt
        task.createdAtMs = created
        task.updatedAtMs = updated
        return task
    }

    @Test func barShowsStateProgressAttemptAndElapsedTime() {
        #expect(
            ProgressLine.bar(task(.processing, progress: 0.45, attempt: 1), elapsedMilliseconds: 12_500)
                == "PROCESSING  [=========>          ]  45%  attempt 1  elapsed 0:12")
        #expect(
            ProgressLine.bar(task(.pending), elapsedMilliseconds: 0)
                == "PENDING     [                    ]   0%  attempt 0  elapsed 0:00")
        #expect(
            ProgressLine.bar(task(.completed, progress: 1, attempt: 2), elapsedMilliseconds: 3_723_000)
                == "COMPLETED   [====================] 100%  attempt 2  elapsed 1:02:03")
    }

    @Test func barKeepsItsWidthWhateverTheProgress() {
        let widths = Set(stride(from: Float(0), through: 1, by: 0.01).map {
            ProgressLine.bar(task(.processing, progress: $0, attempt: 1), elapsedMilliseconds: 0).count
        })
        #expect(widths.count == 1)
        #expect(widths.first! < 80)
    }

    @Test func progressOutsideItsRangeIsClamped() {
        #expect(ProgressLine.percent(.nan) == 0)
        #expect(ProgressLine.percent(.infinity) == 0)
        #expect(ProgressLine.percent(-1) == 0)
        #expect(ProgressLine.percent(7) == 100)
        #expect(ProgressLine.percent(0.333) == 33)
    }

    @Test func redrawReturnsToTheLineStartAndClearsItInOneString() {
        #expect(ProgressLine.redraw("x") == "\r\u{1B}[2Kx")
    }

    @Test func plainLineNamesTaskStateProgressAndAttempt() {
        #expect(ProgressLine.plain(task(.processing, progress: 0.5, attempt: 3)) == "task_1 PROCESSING 50% attempt 3")
    }

    @Test func elapsedRunsUntilNowThenStopsAtTheLastChange() {
        #expect(ProgressLine.elapsedMilliseconds(task(.processing, created: 1_000, updated: 2_000), nowMilliseconds: 9_000) == 8_000)
        #expect(ProgressLine.elapsedMilliseconds(task(.failed, created: 1_000, updated: 2_000), nowMilliseconds: 9_000) == 1_000)
        // A server clock ahead of the client's: never a negative time.
        #expect(ProgressLine.elapsedMilliseconds(task(.pending, created: 5_000), nowMilliseconds: 1_000) == 0)
    }

    @Test func durations() {
        #expect(ProgressLine.duration(milliseconds: 7_999) == "0:07")
        #expect(ProgressLine.duration(milliseconds: 754_000) == "12:34")
        #expect(ProgressLine.duration(milliseconds: 36_000_000) == "10:00:00")
    }
}

@Suite struct TextTableTests {
    @Test func columnsAreAlignedTwoSpacesApartWithoutTrailingSpaces() {
        var table = TextTable(header: ["NAME", "COUNT", "NOTE"], rightAligned: [1])
        table.rows = [["a", "5", ""], ["longer", "12345", "x"]]
        #expect(table.rendered() == "NAME    COUNT  NOTE\na           5\nlonger  12345  x\n")
    }

    @Test func aHeaderAloneIsOneLine() {
        #expect(TextTable(header: ["A", "B"]).rendered() == "A  B\n")
    }

    @Test func taskTableHasOneRowPerTask() {
        var task = Swapline_V1_Task()
        task.taskID = "task_1"
        task.status = .processing
        task.workflow = "face_swap"
        task.progress = 0.25
        task.attempt = 1
        task.createdAtMs = 1_733_356_200_000
        task.updatedAtMs = 1_733_356_261_000
        #expect(
            TaskTable.rendered([task]) == """
                ID      STATUS      WORKFLOW   PROGRESS  ATTEMPT  CREATED              UPDATED
                task_1  PROCESSING  face_swap       25%        1  2024-12-04 23:50:00  2024-12-04 23:51:01

                """)
    }
}

@Suite struct TaskTextTests {
    @Test func describesTheTaskAndItsResultURLs() {
        var task = Swapline_V1_Task()
        task.taskID = "task_1"
        task.status = .completed
        task.workflow = "face_swap"
        task.progress = 1
        task.attempt = 1
        task.params = Swapline_V1_FaceSwapParams(
            sourceURL: "https://e.com/a.jpg", targetURL: "https://e.com/b.jpg", resolution: "256x256", model: "inswapper_128",
            options: ["k": "v"])
        task.result = Swapline_V1_TaskResult(
            outputURL: "https://e.com/out.jpg", outputs: ["webp_url": "https://e.com/out.webp"], processingTime: 1.5, jobID: "j",
            storageProvider: "local")
        #expect(
            TaskText.described(task) == """
                task task_1: COMPLETED, attempt 1
                  workflow: face_swap, priority: 0, progress: 100%
                  created: 1970-01-01 00:00:00, updated: 1970-01-01 00:00:00
                  source: https://e.com/a.jpg
                  target: https://e.com/b.jpg
                  model: inswapper_128, resolution: 256x256
                  option k: v
                  output_url: https://e.com/out.jpg
                  webp_url: https://e.com/out.webp
                  processing_time: 1.5 s, job_id: j, storage: local

                """)
    }

    @Test func listsTheHistoryOneChangePerLine() {
        var task = Swapline_V1_Task()
        task.taskID = "task_1"
        task.status = .failed
        task.history = [
            .init(status: .pending, atMs: 0, attempt: 0, note: ""),
            .init(status: .processing, atMs: 61_000, attempt: 1, note: "worker-1#0"),
            .init(status: .failed, atMs: 62_000, attempt: 1, note: "engine: no face"),
        ]
        #expect(TaskText.described(task).hasSuffix("""
              history:
                1970-01-01 00:00:00  PENDING     attempt 0
                1970-01-01 00:01:01  PROCESSING  attempt 1  worker-1#0
                1970-01-01 00:01:02  FAILED      attempt 1  engine: no face

            """))
    }
}

@Suite struct StatsTableTests {
    @Test func countsByWorkflowAndStateThenTheOtherFigures() {
        let stats = Swapline_V1_QueueStats(
            counts: [
                .init(workflow: "face_swap", status: .pending, count: 3), .init(workflow: "face_swap", status: .completed, count: 12),
                .init(workflow: "aging", status: .failed, count: 1),
            ],
            oldestPendingAgeMs: 75_000, waitingConsumers: 2, activeLeases: 4, finishedLastMinute: 8, failedLastMinute: 2,
            failureShareLastMinute: 0.25)
        #expect(
            StatsTable.rendered(stats) == """
                WORKFLOW   PENDING  PROCESSING  COMPLETED  FAILED  CANCELLED
                aging            0           0          0       1          0
                face_swap        3           0         12       0          0
                oldest pending: 1:15
                active leases: 4
                waiting consumers: 2
                last minute: 8 finished, 2 failed (25%)

                """)
    }

    @Test func anEmptyQueueIsAHeaderAndZeros() {
        #expect(
            StatsTable.rendered(Swapline_V1_QueueStats()) == """
                WORKFLOW  PENDING  PROCESSING  COMPLETED  FAILED  CANCELLED
                oldest pending: none
                active leases: 0
                waiting consumers: 0
                last minute: 0 finished, 0 failed (0%)

                """)
    }
}
