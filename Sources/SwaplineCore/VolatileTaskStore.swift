/// Commits every write at once and keeps nothing: the scheduler's own memory is the only copy
/// of each task, so nothing survives the process (`--store memory`, throwaway runs and
/// benchmarks). `InMemoryTaskStore` is the variant that keeps records, for tests that restart
/// a scheduler on the same store.
public struct VolatileTaskStore: TaskStore {
    public init() {}

    public func loadAll() throws -> [TaskRecord] { [] }

    public func write(_ records: [TaskRecord], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        completion(.success(()))
    }

    public func delete(_ taskIDs: [String], completion: @escaping @Sendable (Result<Void, TaskStoreError>) -> Void) {
        completion(.success(()))
    }
}
