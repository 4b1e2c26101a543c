import Logging
import SwaplineCore

/// Deletes the stored files of tasks that retention removed, on whichever backend of the
/// chain holds each (the server runs it, configured with the workers' `--storage` flags).
public struct StoredResultCleaner: Sendable {
    let backends: [any ResultStorage]
    let logger: Logger

    public init(_ chain: ResultStorageChain, logger: Logger) {
        backends = chain.backends
        self.logger = logger
    }

    /// One output URL at a time; a failure is logged and the file left behind (a bucket
    /// lifecycle rule catches what this misses: docs/storage.md).
    public func deleteResults(of tasks: [TaskRecord]) async {
        var deleted = 0
        for task in tasks {
            guard let output = task.output else { continue }
            for url in Set(output.outputs.values).union(output.outputURL.isEmpty ? [] : [output.outputURL]) {
                if await delete(url, taskID: task.taskID) { deleted += 1 }
            }
        }
        if deleted > 0 { logger.info("retention: deleted \(deleted) stored result files of \(tasks.count) tasks") }
    }

    private func delete(_ url: String, taskID: String) async -> Bool {
        for backend in backends {
            do {
                if try await backend.delete(url: url) { return true }
            } catch {
                logger.warning("retention: could not delete a result file of \(taskID): \(error)", metadata: ["task_id": .string(taskID)])
                return false
            }
        }
        logger.notice("retention: no --storage backend holds the result \(url) of \(taskID); left as it is", metadata: ["task_id": .string(taskID)])
        return false
    }
}
