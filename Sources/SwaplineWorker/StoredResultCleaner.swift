import Logging
import SwaplineCore

/// Deletes stored result files — of tasks that retention removed, or past the result
/// lifetime — on whichever backend of the chain published each (the server runs it,
/// configured with the workers' `--storage` flags).
public struct StoredResultCleaner: Sendable {
    let backends: [any ResultStorage]

    public init(_ chain: ResultStorageChain) {
        backends = chain.backends
    }

    /// One try at one file, the backend recorded as its provider first; the server's sweep
    /// retries a failure later (`ResultFileSweeper`).
    public func delete(_ file: ResultDeletion) async -> ResultFileDeletionResult {
        let recordedFirst = backends.filter { $0.providerName == file.provider } + backends.filter { $0.providerName != file.provider }
        for backend in recordedFirst {
            do {
                if try await backend.delete(url: file.location) { return .deleted }
            } catch {
                return .failed("\(backend.providerName): \(error)")
            }
        }
        return .unrecognised
    }
}
