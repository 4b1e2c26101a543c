/// A stored result file waiting to be deleted on its backend: its task was purged by retention,
/// or its result lifetime passed. The queue backend records it in the same atomic step, so it
/// survives restarts until a deletion sweep deletes the file (or gives up on it).
public struct ResultDeletion: Sendable, Hashable {
    /// Assigned by the queue backend.
    public var id: Int64
    public var taskID: String
    /// The `storage_provider` recorded for the file (empty when the task did not say).
    public var provider: String
    /// The URL the task's result published for the file.
    public var location: String
    /// Tries made so far.
    public var attempts: Int32
    /// When a sweep may take it (ms since the Unix epoch).
    public var nextTryAtMs: Int64

    public init(id: Int64, taskID: String, provider: String, location: String, attempts: Int32, nextTryAtMs: Int64) {
        self.id = id
        self.taskID = taskID
        self.provider = provider
        self.location = location
        self.attempts = attempts
        self.nextTryAtMs = nextTryAtMs
    }

    /// The files of `task`'s result (each output, and `output_url` should it be none of them),
    /// due at once.
    public static func files(of task: TaskRecord, dueAtMs: Int64) -> [ResultDeletion] {
        guard let output = task.output else { return [] }
        let providers = output.outputProviders
        var byLocation: [String: String] = [:]
        for (format, url) in output.outputs where !url.isEmpty { byLocation[url] = providers[format] ?? output.storageProvider }
        if !output.outputURL.isEmpty, byLocation[output.outputURL] == nil { byLocation[output.outputURL] = output.storageProvider }
        return byLocation.sorted { $0.key < $1.key }.map { location, provider in
            ResultDeletion(id: 0, taskID: task.taskID, provider: provider, location: location, attempts: 0, nextTryAtMs: dueAtMs)
        }
    }
}

/// What a deletion sweep reports back for one `ResultDeletion` it took.
public enum ResultDeletionOutcome: Sendable, Hashable {
    /// The file is gone, or the sweep gave up on it: the record goes.
    case finished(id: Int64)
    /// The try failed: try again at `atMs`, `attempts` tries made so far.
    case retry(id: Int64, attempts: Int32, atMs: Int64)
}

/// What one try at deleting a stored result file found.
public enum ResultFileDeletionResult: Sendable, Hashable {
    case deleted
    /// No configured storage backend publishes the URL: nothing to delete here.
    case unrecognised
    /// The backend did not delete it (down, 5xx, timeouts beyond its own retries); why.
    case failed(String)
}
