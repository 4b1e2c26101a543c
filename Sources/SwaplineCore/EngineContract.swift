/// Names shared by the engine contract's two sides (docs/facefusion-api.md): the worker that
/// calls an engine and `swapline engine` that serves it.
public enum EngineContract {
    /// The request header a worker may name its job id with, to follow it at `GET /jobs/{id}`.
    public static let jobIDHeader = "x-swapline-job-id"
    /// The request header a worker may bound its job with: the milliseconds it waits for the
    /// answer. The engine drops the job if it is still queued then, and kills its run if it
    /// is still running.
    public static let timeoutHeader = "x-swapline-timeout-ms"
    /// The largest `timeoutHeader` value taken: 30 days.
    public static let maxTimeoutMs: Int64 = 30 * 24 * 3_600_000
}
