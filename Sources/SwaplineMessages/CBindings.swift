// The protobuf-c types the bridge uses, each with its generated `..._init` function: the one
// table that names C symbols per message type.
internal import CSwaplineProto

// Enums: imported as structs around a UInt32 number.
extension Swapline__V1__TaskStatus: CEnum {}
extension Grpc__Health__V1__HealthCheckResponse__ServingStatus: CEnum {}
extension Grpc__Testing__PayloadType: CEnum {}
extension Grpc__Testing__GrpclbRouteType: CEnum {}

// swapline.v1
extension Swapline__V1__FaceSwapParams__OptionsEntry: CStringMapEntry { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__face_swap_params__options_entry__init(m) } }
extension Swapline__V1__FaceSwapParams: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__face_swap_params__init(m) } }
extension Swapline__V1__TaskResult__OutputsEntry: CStringMapEntry { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__task_result__outputs_entry__init(m) } }
extension Swapline__V1__TaskResult__OutputProvidersEntry: CStringMapEntry { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__task_result__output_providers_entry__init(m) } }
extension Swapline__V1__TaskResult: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__task_result__init(m) } }
extension Swapline__V1__TaskTransition: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__task_transition__init(m) } }
extension Swapline__V1__Task: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__task__init(m) } }
extension Swapline__V1__CreateTaskRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__create_task_request__init(m) } }
extension Swapline__V1__ProcessSyncRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__process_sync_request__init(m) } }
extension Swapline__V1__FaceSwapResponse__MetadataEntry: CStringMapEntry { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__face_swap_response__metadata_entry__init(m) } }
extension Swapline__V1__FaceSwapResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__face_swap_response__init(m) } }
extension Swapline__V1__GetTaskRequest: CTaskIDMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__get_task_request__init(m) } }
extension Swapline__V1__CancelTaskRequest: CTaskIDMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__cancel_task_request__init(m) } }
extension Swapline__V1__WatchTaskRequest: CTaskIDMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__watch_task_request__init(m) } }
extension Swapline__V1__TaskEvent: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__task_event__init(m) } }
extension Swapline__V1__ListTasksRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__list_tasks_request__init(m) } }
extension Swapline__V1__ListTasksResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__list_tasks_response__init(m) } }
extension Swapline__V1__GetQueueStatsRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__get_queue_stats_request__init(m) } }
extension Swapline__V1__QueueStats__Count: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__queue_stats__count__init(m) } }
extension Swapline__V1__QueueStats: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__queue_stats__init(m) } }
extension Swapline__V1__FetchTaskRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__fetch_task_request__init(m) } }
extension Swapline__V1__FetchTaskResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__fetch_task_response__init(m) } }
extension Swapline__V1__UpdateStatusRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { swapline__v1__update_status_request__init(m) } }

// grpc.health.v1
extension Grpc__Health__V1__HealthCheckRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__health__v1__health_check_request__init(m) } }
extension Grpc__Health__V1__HealthCheckResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__health__v1__health_check_response__init(m) } }

// grpc.testing
extension Grpc__Testing__Empty: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__empty__init(m) } }
extension Grpc__Testing__BoolValue: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__bool_value__init(m) } }
extension Grpc__Testing__Payload: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__payload__init(m) } }
extension Grpc__Testing__EchoStatus: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__echo_status__init(m) } }
extension Grpc__Testing__SimpleRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__simple_request__init(m) } }
extension Grpc__Testing__SimpleResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__simple_response__init(m) } }
extension Grpc__Testing__StreamingInputCallRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__streaming_input_call_request__init(m) } }
extension Grpc__Testing__StreamingInputCallResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__streaming_input_call_response__init(m) } }
extension Grpc__Testing__ResponseParameters: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__response_parameters__init(m) } }
extension Grpc__Testing__StreamingOutputCallRequest: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__streaming_output_call_request__init(m) } }
extension Grpc__Testing__StreamingOutputCallResponse: CMessage { static func initialize(_ m: UnsafeMutablePointer<Self>) { grpc__testing__streaming_output_call_response__init(m) } }
