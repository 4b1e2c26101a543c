/// Names shared by the engine contract's two sides (docs/facefusion-api.md): the worker that
/// calls an engine and `swapline engine` that serves it.
public enum EngineContract {
    /// The request header a worker may name its job id with, to follow it at `GET /jobs/{id}`.
    public static let jobIDHeader = "x-swapline-job-id"
}
