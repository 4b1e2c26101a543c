import Logging
import Synchronization
import SwaplineCore
import Testing
@testable import SwaplineServer

/// The server's state-change log: one line per change of state, none for progress.
@Suite struct TaskChangeLogTests {
    /// Hands the message and metadata of each event to `record`.
    struct RecordingHandler: LogHandler {
        let record: @Sendable (String, Logger.Metadata) -> Void
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            record("\(event.message)", event.metadata ?? [:])
        }
    }

    private func task(_ state: TaskState, attempt: Int32 = 0, lease: String? = nil, progress: Float = 0, error: String = "") -> TaskRecord {
        TaskRecord(
            taskID: "task_1", workflow: "face_swap", environment: "face_swap", targetPort: 0,
            params: FaceSwapParameters(sourceURL: "https://example.com/s.jpg", targetURL: "https://example.com/t.jpg", resolution: "", model: ""),
            state: state, sourceChannel: "", createdAtMs: 0, updatedAtMs: 0, progress: progress, error: error, attempt: attempt,
            lease: lease.map { Lease(id: $0, consumerID: "worker#0", expiresAtMs: 0) })
    }

    @Test func oneLinePerStateChangeAndPerLease() throws {
        let lines = Mutex<[(String, Logger.Metadata)]>([])
        let handler = RecordingHandler { message, metadata in lines.withLock { $0.append((message, metadata)) } }
        let changeLog = TaskChangeLog(logger: Logger(label: "test") { _ in handler })
        let firstLease = "lease_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", secondLease = "lease_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        for (number, change) in [
            task(.pending), task(.processing, attempt: 1, lease: firstLease),
            task(.processing, attempt: 1, lease: firstLease, progress: 0.5),  // progress: no line
            task(.pending, attempt: 1),  // handed back
            task(.processing, attempt: 2, lease: secondLease), task(.processing, attempt: 2, lease: secondLease, progress: 0.9),
            task(.failed, attempt: 2, error: "upload: storage refused the file"),
        ].enumerated() {
            var change = change
            change.version = Int64(number + 1)  // as a store numbers a task's changes
            changeLog.record(change)
        }
        let logged = lines.withLock { $0 }
        #expect(logged.map { $0.1["state"]?.description } == ["PENDING", "PROCESSING", "PENDING", "PROCESSING", "FAILED"])
        #expect(logged.allSatisfy { $0.1["task_id"] == "task_1" && $0.0.contains("task_1") })
        #expect(logged[3].1["lease_id"] == "lease_bbbbbb" && logged[3].1["consumer_id"] == "worker#0" && logged[3].1["attempt"]?.description == "2")
        #expect(logged[4].1["error"] == "upload: storage refused the file" && logged[4].1["lease_id"] == nil)
    }
}
