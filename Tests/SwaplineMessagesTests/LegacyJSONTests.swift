import SwaplineMessages
import Testing

@Suite struct JSONValueTests {
    @Test func writesLikePythonsCompactJSONDumps() {
        let value: JSONValue = .object([
            ("b", .string("é\n\"/\u{01}")), ("a", .array([.integer(1), .number(2.5), .number(0), .bool(true), .null])),
            ("p", .float(0.3)),
        ])
        #expect(String(decoding: value.serialized(), as: UTF8.self) == #"{"b":"é\n\"/\u0001","a":[1,2.5,0.0,true,null],"p":0.3}"#)
    }

    @Test func prettyPrintsLikeJSONDumpsIndent2() {
        let value: JSONValue = .object([("a", .array([.integer(1)])), ("b", .object([]))])
        #expect(String(decoding: value.serialized(indent: 2), as: UTF8.self) == "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}\n")
    }

    @Test func parsesWhatItWrites() throws {
        let text = #"{"s":"a\u00e9\ud83d\ude00\t","n":-1.5e2,"i":42,"l":[true,false,null,{}]}"#
        let value = try JSONValue(parsing: Array(text.utf8))
        #expect(value["s"] == .string("aé😀\t"))
        #expect(value["n"] == .number(-150))
        #expect(value["i"] == .integer(42))
        #expect(try JSONValue(parsing: value.serialized()) == value)
    }

    @Test(arguments: [("", 0), ("{", 1), ("{\"a\" 1}", 5), ("[1,]", 3), ("01", 1), ("\"\u{01}\"", 1), ("{} x", 3)])
    func reportsWhereSyntaxErrorsAre(text: String, offset: Int) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: Array(text.utf8)) }
        do {
            _ = try JSONValue(parsing: Array(text.utf8))
        } catch {
            #expect(error.offset == offset)
        }
    }

    @Test func refusesTooManyItemsInOneContainer() {
        let many = "[" + Array(repeating: "0", count: 1025).joined(separator: ",") + "]"
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: Array(many.utf8)) }
        let enough = "[" + Array(repeating: "0", count: 1024).joined(separator: ",") + "]"
        #expect(throws: Never.self) { try JSONValue(parsing: Array(enough.utf8)) }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: Array(deep.utf8)) }
    }
}

@Suite struct LegacyJSONResponseTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00"), (1_738_238_400_000, "2025-01-30T12:00:00"),
        (951_782_399_999, "2000-02-28T23:59:59"), (951_868_800_000, "2000-03-01T00:00:00"), (-1, "1969-12-31T23:59:59"),
    ])
    func formatsTimestampsLikeIsoformat(milliseconds: Int64, expected: String) {
        #expect(LegacyJSON.isoTimestamp(milliseconds: milliseconds) == expected)
    }

    @Test func unifiedTaskFormatKeepsTheOriginalKeysFirst() {
        let task = Swapline_V1_Task(
            taskID: "task_12345", workflow: "face_swap", environment: "face_swap", targetPort: 8000,
            params: Swapline_V1_FaceSwapParams(
                sourceURL: "https://s", targetURL: "https://t", resolution: "1024x1024", model: "inswapper_128_fp16"),
            status: .pending, sourceChannel: "http://localhost:8000", createdAtMs: 1_738_238_400_000,
            updatedAtMs: 1_738_238_400_000)
        let json = String(decoding: JSONValue.object(LegacyJSON.task(task)).serialized(), as: UTF8.self)
        #expect(json == #"{"taskId":"task_12345","workflow":"face_swap","environment":"face_swap","target_port":8000,"#
            + #""params":{"input_data":{"wf_json":{"source_url":"https://s","target_url":"https://t","resolution":"1024x1024","#
            + #""model":"inswapper_128_fp16"}}},"status":"PENDING","source_channel":"http://localhost:8000","#
            + #""created_at":"2025-01-30T12:00:00","updated_at":"2025-01-30T12:00:00","progress":0.0,"attempt":0,"#
            + #""priority":0,"error":null,"result":null}"#)
    }

    @Test func getTaskJSONAddsTheHistoryAfterTheUnifiedKeys() {
        let task = Swapline_V1_Task(
            taskID: "task_1", status: .processing, history: [.init(status: .processing, atMs: 5, attempt: 1, note: "w#1")])
        guard case .object(let members) = LegacyJSON.taskWithHistory(task) else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.0) == LegacyJSON.task(task).map(\.0) + ["history"])
        #expect(
            String(decoding: members.last!.1.serialized(), as: UTF8.self)
                == #"[{"status":"PROCESSING","at_ms":5,"attempt":1,"note":"w#1"}]"#)
    }

    @Test func listAndStatsShapes() {
        let page = Swapline_V1_ListTasksResponse(tasks: [Swapline_V1_Task(taskID: "task_1")], nextPageToken: "t")
        let json = String(decoding: LegacyJSON.taskList(page).serialized(), as: UTF8.self)
        #expect(json.hasPrefix(#"{"tasks":[{"taskId":"task_1","#) && json.hasSuffix(#"],"next_page_token":"t"}"#))
        let stats = Swapline_V1_QueueStats(
            counts: [.init(workflow: "face_swap", status: .failed, count: 2)], oldestPendingAgeMs: 1, waitingConsumers: 2,
            activeLeases: 3, finishedLastMinute: 4, failedLastMinute: 2, failureShareLastMinute: 0.5, generatedAtMs: 6)
        #expect(
            String(decoding: LegacyJSON.queueStats(stats).serialized(), as: UTF8.self)
                == #"{"counts":[{"workflow":"face_swap","status":"FAILED","count":2}],"oldest_pending_age_ms":1,"#
                + #""waiting_consumers":2,"active_leases":3,"finished_last_minute":4,"failed_last_minute":2,"#
                + #""failure_share_last_minute":0.5,"generated_at_ms":6}"#)
    }
}
