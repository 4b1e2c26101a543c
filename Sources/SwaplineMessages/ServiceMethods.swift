public import RPCCore

// One descriptor per method of the services in proto/, named like grpc-swift's generated
// `Method` namespaces: the server registers its handlers under them, the typed client calls
// them, and the REST shim and its OpenAPI document name them. Hand-written beside the
// protobuf-c bridges of this module; the paths are those of the .proto files.

/// swapline.v1.TaskService: what clients call.
public enum Swapline_V1_TaskService {
    public static let name = "swapline.v1.TaskService"
    public static let createTask = RPCMethod<Swapline_V1_CreateTaskRequest, Swapline_V1_Task>(service: name, method: "CreateTask")
    public static let processSync =
        RPCMethod<Swapline_V1_ProcessSyncRequest, Swapline_V1_FaceSwapResponse>(service: name, method: "ProcessSync")
    public static let getTask = RPCMethod<Swapline_V1_GetTaskRequest, Swapline_V1_Task>(service: name, method: "GetTask")
    public static let cancelTask = RPCMethod<Swapline_V1_CancelTaskRequest, Swapline_V1_Task>(service: name, method: "CancelTask")
    /// Server streaming: any number of `TaskEvent`s.
    public static let watchTask = RPCMethod<Swapline_V1_WatchTaskRequest, Swapline_V1_TaskEvent>(service: name, method: "WatchTask", streamsResponses: true)
    public static let listTasks = RPCMethod<Swapline_V1_ListTasksRequest, Swapline_V1_ListTasksResponse>(service: name, method: "ListTasks")
    public static let getQueueStats = RPCMethod<Swapline_V1_GetQueueStatsRequest, Swapline_V1_QueueStats>(service: name, method: "GetQueueStats")
}

/// swapline.v1.ConsumerService: what workers call.
public enum Swapline_V1_ConsumerService {
    public static let name = "swapline.v1.ConsumerService"
    public static let fetchTask =
        RPCMethod<Swapline_V1_FetchTaskRequest, Swapline_V1_FetchTaskResponse>(service: name, method: "FetchTask")
    public static let updateStatus = RPCMethod<Swapline_V1_UpdateStatusRequest, Swapline_V1_Task>(service: name, method: "UpdateStatus")
}

/// grpc.health.v1.Health.
public enum Grpc_Health_V1_Health {
    public static let name = "grpc.health.v1.Health"
    public static let check =
        RPCMethod<Grpc_Health_V1_HealthCheckRequest, Grpc_Health_V1_HealthCheckResponse>(service: name, method: "Check")
    /// Server streaming.
    public static let watch =
        RPCMethod<Grpc_Health_V1_HealthCheckRequest, Grpc_Health_V1_HealthCheckResponse>(service: name, method: "Watch", streamsResponses: true)
}

/// grpc.testing.TestService, gRPC's interop test service.
public enum Grpc_Testing_TestService {
    public static let name = "grpc.testing.TestService"
    public static let emptyCall = RPCMethod<Grpc_Testing_Empty, Grpc_Testing_Empty>(service: name, method: "EmptyCall")
    public static let unaryCall = RPCMethod<Grpc_Testing_SimpleRequest, Grpc_Testing_SimpleResponse>(service: name, method: "UnaryCall")
    /// Server streaming.
    public static let streamingOutputCall = RPCMethod<Grpc_Testing_StreamingOutputCallRequest, Grpc_Testing_StreamingOutputCallResponse>(
        service: name, method: "StreamingOutputCall", streamsResponses: true)
    /// Bidirectional streaming: registered with a raw handler.
    public static let fullDuplexCall = MethodDescriptor(service: name, method: "FullDuplexCall", streamsResponses: true)
}
