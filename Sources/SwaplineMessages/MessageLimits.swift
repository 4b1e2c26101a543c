/// The largest counts and sizes the decoder accepts in swapline.v1 messages. A 4 MiB message
/// could otherwise carry about two million empty map or repeated entries, each of which would
/// become a Swift value held for as long as the call lasts (a parked FetchTask waits up to a
/// minute). They are checked on the decoded protobuf-c structs before any Swift value is built,
/// and the REST shim checks the same limits on its JSON bodies; a request over a limit is
/// refused (INVALID_ARGUMENT, HTTP 422) with a message naming the field and the limit.
/// docs/security.md lists them.
public enum MessageLimits {
    /// task_id, lease_id, consumer_id and idempotency_key, in bytes. The server's own ids are
    /// 26 characters.
    public static let idBytes = 128
    /// Short names: workflow, model, resolution, environment, source_channel, job_id,
    /// storage_provider, the `status` of a FaceSwapResponse; in bytes.
    public static let nameBytes = 128
    /// source_url, target_url, output_url and output_path, in bytes: twice the URL policy's
    /// 2048 (`URLPolicy.maxURLLength`), so that a URL just over the policy's limit gets the
    /// policy's own answer (naming the field and the reason) and only a larger one this limit.
    public static let urlBytes = 4096
    /// Free text: a task's error and an UpdateStatus message, in bytes.
    public static let textBytes = 16 * 1024
    /// Entries of a map (params.options, result.outputs, FaceSwapResponse.metadata).
    public static let mapEntries = 64
    /// A map key, in bytes.
    public static let mapKeyBytes = 128
    /// A map value, in bytes (room for a URL in result.outputs).
    public static let mapValueBytes = 2048
    /// Entries of FetchTaskRequest.workflows (the server serves a handful of workflows).
    public static let workflowsPerFetch = 32
    /// Entries of Task.history: the stores keep a task's last 64 changes of state.
    public static let historyEntries = 64
    /// Entries of ListTasksRequest.statuses (there are five states; repeats are harmless).
    public static let statusesPerList = 16
    /// ListTasksRequest.page_token, in bytes; the server's tokens are under 400 (hex of the
    /// cursor: a creation time, a task id of at most `idBytes` and the filters' hash).
    public static let pageTokenBytes = 512
    /// Tasks of one ListTasksResponse: the largest page_size the server allows.
    public static let tasksPerPage = 1000
    /// Entries of QueueStats.counts (workflow × state pairs).
    public static let queueStatsCounts = 4096
    /// Entries of grpc.testing.StreamingOutputCallRequest.response_parameters (interop tests
    /// ask for a few).
    public static let interopResponseParameters = 1024
    /// Fields of one message on the wire, nested messages and map entries included, checked
    /// before protobuf-c unpacks it (`WireFieldCount`). The largest message the limits above
    /// allow (1,024 interop response parameters of five fields each) stays well below.
    public static let wireFields = 16_384
    /// Nesting of messages on the wire; ours nest at most four deep.
    public static let wireDepth = 32
}
