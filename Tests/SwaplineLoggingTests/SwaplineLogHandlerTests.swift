import Foundation
import Logging
import Synchronization
import Testing
@testable import SwaplineLogging

/// The lines `SwaplineLogHandler` writes, in both formats.
@Suite struct SwaplineLogHandlerTests {
    /// Logs one event through a handler of `format` and returns the lines written.
    private func lines(_ format: LogFormat, _ body: (Logger) -> Void) -> [String] {
        let written = Mutex<[String]>([])
        var handler = SwaplineLogHandler(label: "swapline.test", format: format) { line in written.withLock { $0.append(line) } }
        handler.logLevel = .info
        var logger = Logger(label: "swapline.test") { _ in handler }
        logger[metadataKey: "task_id"] = "task_1"
        body(logger)
        return written.withLock { $0 }
    }

    @Test func errorLinesAreFlushedAtOnceOthersAreNot() {
        let events = Mutex<[String]>([])
        var handler = SwaplineLogHandler(
            label: "swapline.test", format: .text, write: { _ in events.withLock { $0.append("line") } },
            flush: { events.withLock { $0.append("flush") } })
        handler.logLevel = .info
        let logger = Logger(label: "swapline.test") { _ in handler }
        logger.info("a state change")
        logger.warning("a retry")
        logger.error("gave up")
        logger.critical("cannot go on")
        #expect(events.withLock { $0 } == ["line", "line", "line", "flush", "line", "flush"])
    }

    @Test func jsonLinesAreOneObjectEachWithEveryField() throws {
        let written = lines(.json) { logger in
            logger.info("line \"one\"\nwith\ttabs \u{1}", metadata: ["attempt": .stringConvertible(2), "list": ["a", .dictionary(["k": "v"])]])
            logger.debug("not at this level")
        }
        try #require(written.count == 1)
        #expect(written[0].hasSuffix("}\n") && written[0].filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info" && object["label"] as? String == "swapline.test")
        #expect(object["message"] as? String == "line \"one\"\nwith\ttabs \u{1}")
        #expect(object["source"] as? String == "SwaplineLoggingTests")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["task_id"] as? String == "task_1" && metadata["attempt"] as? String == "2")
        #expect((metadata["list"] as? [Any])?.count == 2)
        let timestamp = try #require(object["ts"] as? String)
        #expect(timestamp.hasSuffix("Z") && timestamp.contains("."))
    }

    @Test func textLinesCarryMetadataAsKeyValueSorted() throws {
        let written = lines(.text) { logger in logger.warning("task failed", metadata: ["stage": "upload"]) }
        try #require(written.count == 1)
        #expect(written[0].contains(" warning swapline.test: stage=upload task_id=task_1 [SwaplineLoggingTests] task failed\n"))
    }

    @Test func eventMetadataWinsOverTheLoggers() throws {
        let written = lines(.json) { logger in logger.info("x", metadata: ["task_id": "task_2"]) }
        #expect(written.first?.contains("\"task_id\":\"task_2\"") == true)
    }

    @Test func taskMetadataLogsOnlyALeasePrefix() {
        let lease = "lease_0123456789abcdef0123456789abcdef"
        let metadata = TaskLogMetadata.metadata(taskID: "task_1", attempt: 3, consumerID: "w#0", leaseID: lease)
        #expect(metadata["lease_id"] == .string(String(lease.prefix(TaskLogMetadata.leasePrefixLength))))
        #expect(metadata["task_id"] == "task_1" && metadata["consumer_id"] == "w#0" && metadata["attempt"]?.description == "3")
        #expect(TaskLogMetadata.metadata(taskID: "task_1").count == 1)
    }
}
