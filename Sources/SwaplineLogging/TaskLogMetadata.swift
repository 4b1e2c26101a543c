public import Logging

/// The metadata that ties a log line to a task, under the same keys on the server and the
/// worker, so one filter (`task_id=...`) finds a task's whole story.
public enum TaskLogMetadata {
    /// Characters of a lease ID that are logged: enough to tell leases apart, too few to use
    /// one (a lease ID is what lets a consumer report on a task).
    public static let leasePrefixLength = 12

    public static func metadata(taskID: String, attempt: Int32? = nil, consumerID: String? = nil, leaseID: String? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        metadata.reserveCapacity(8)  // these four, and what a caller adds (state, workflow, error, stage)
        metadata["task_id"] = .string(taskID)
        if let attempt { metadata["attempt"] = .stringConvertible(attempt) }
        if let consumerID, !consumerID.isEmpty { metadata["consumer_id"] = .string(consumerID) }
        if let leaseID, !leaseID.isEmpty { metadata["lease_id"] = .string(String(leaseID.prefix(leasePrefixLength))) }
        return metadata
    }
}
