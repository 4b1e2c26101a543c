import NIOCore
import SwaplineMessages
import Testing

/// Encodes `message`, decodes the bytes and returns the result.
func roundTrip<Message: ProtoMessage>(_ message: Message) throws -> Message {
    try Message(protobufBytes: message.serializedBuffer())
}

let unicode = "タスク-🚀-ñ-Ωμέγα-\u{1F9D1}\u{200D}\u{1F3A8}"

let fullParams = Swapline_V1_FaceSwapParams(
    sourceURL: "https://example.com/source.jpg", targetURL: "https://cdn.example.com/\(unicode).png",
    resolution: "1920x1080", model: "inswapper_128_fp16",
    options: ["face_enhancer_model": "gfpgan_1.4", "note": unicode, "": "empty key", "empty value": ""])

let fullResult = Swapline_V1_TaskResult(
    outputURL: "https://storage.example.com/out.jpg",
    outputs: ["gif_url": "https://storage.example.com/out.gif", "webp_url": "https://storage.example.com/out.webp"],
    processingTime: 12.5, jobID: "job_12345", storageProvider: "gif_url:local,webp_url:gcs",
    outputProviders: ["gif_url": "local", "webp_url": "gcs"])

let fullTask = Swapline_V1_Task(
    taskID: "task_\(unicode)", workflow: "face_swap", environment: "face_swap", targetPort: 8000,
    params: fullParams, status: .completed, sourceChannel: "http://localhost:8000",
    createdAtMs: 1_738_238_400_000, updatedAtMs: Int64.max, progress: 0.75, error: "none",
    result: fullResult, attempt: 3, priority: -7)

@Suite struct RoundTripTests {
    @Test func faceSwapParams() throws {
        #expect(try roundTrip(fullParams) == fullParams)
    }

    @Test func taskResult() throws {
        #expect(try roundTrip(fullResult) == fullResult)
    }

    @Test func task() throws {
        #expect(try roundTrip(fullTask) == fullTask)
        let minimal = Swapline_V1_Task(taskID: "x", status: .pending)
        #expect(try roundTrip(minimal) == minimal)
        #expect(try roundTrip(minimal).params == nil)
        #expect(try roundTrip(minimal).result == nil)
    }

    @Test func emptySubMessagesStayPresent() throws {
        let task = Swapline_V1_Task(params: Swapline_V1_FaceSwapParams(), result: Swapline_V1_TaskResult())
        let decoded = try roundTrip(task)
        #expect(decoded.params == Swapline_V1_FaceSwapParams())
        #expect(decoded.result == Swapline_V1_TaskResult())
    }

    @Test func createTaskRequest() throws {
        let request = Swapline_V1_CreateTaskRequest(
            workflow: "face_swap", params: fullParams, idempotencyKey: "key-\(unicode)", priority: Int32.min)
        #expect(try roundTrip(request) == request)
    }

    @Test func processSyncRequest() throws {
        let request = Swapline_V1_ProcessSyncRequest(params: fullParams)
        #expect(try roundTrip(request) == request)
        #expect(try roundTrip(Swapline_V1_ProcessSyncRequest()) == Swapline_V1_ProcessSyncRequest())
    }

    @Test func faceSwapResponse() throws {
        let response = Swapline_V1_FaceSwapResponse(
            status: "success", outputPath: "http://localhost:8000/outputs/result.jpg", processingTime: 0.001,
            jobID: "job_1", metadata: ["storage_provider": "r2", "gif_url": unicode], taskID: "task_1")
        #expect(try roundTrip(response) == response)
    }

    @Test func taskIDRequests() throws {
        #expect(try roundTrip(Swapline_V1_GetTaskRequest(taskID: unicode)).taskID == unicode)
        #expect(try roundTrip(Swapline_V1_CancelTaskRequest(taskID: "c")).taskID == "c")
        #expect(try roundTrip(Swapline_V1_WatchTaskRequest(taskID: "w")).taskID == "w")
    }

    @Test func taskEvent() throws {
        let event = Swapline_V1_TaskEvent(task: fullTask, sequence: 42)
        #expect(try roundTrip(event) == event)
    }

    @Test func fetchTask() throws {
        let request = Swapline_V1_FetchTaskRequest(
            consumerID: "worker-1", workflows: ["face_swap", "", unicode, "face_swap"], waitMs: 30_000)
        #expect(try roundTrip(request) == request)
        let response = Swapline_V1_FetchTaskResponse(task: fullTask, leaseID: "lease-1", leaseExpiresAtMs: 1_738_238_460_000)
        #expect(try roundTrip(response) == response)
        #expect(try roundTrip(Swapline_V1_FetchTaskResponse()) == Swapline_V1_FetchTaskResponse())
    }

    @Test func updateStatusRequest() throws {
        let request = Swapline_V1_UpdateStatusRequest(
            taskID: "t", leaseID: "l", status: .failed, progress: 1, message: "uploading",
            result: fullResult, error: "FaceFusion timed out after 120 s")
        #expect(try roundTrip(request) == request)
    }

    @Test func health() throws {
        let request = Grpc_Health_V1_HealthCheckRequest(service: "swapline.v1.TaskService")
        #expect(try roundTrip(request) == request)
        for status in Grpc_Health_V1_HealthCheckResponse.ServingStatus.allCases {
            let response = Grpc_Health_V1_HealthCheckResponse(status: status)
            #expect(try roundTrip(response) == response)
        }
    }

    @Test func interopMessages() throws {
        let payload = Grpc_Testing_Payload(type: .compressable, body: (0..<314_159).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        #expect(try roundTrip(payload) == payload)
        #expect(try roundTrip(Grpc_Testing_Empty()) == Grpc_Testing_Empty())
        #expect(Grpc_Testing_Empty().serializedBuffer().readableBytes == 0)

        let simpleRequest = Grpc_Testing_SimpleRequest(
            responseType: .compressable, responseSize: 314_159, payload: payload, fillUsername: true,
            fillOauthScope: true, responseCompressed: false, responseStatus: Grpc_Testing_EchoStatus(code: 2, message: unicode),
            expectCompressed: true, fillServerID: true, fillGrpclbRouteType: true)
        #expect(try roundTrip(simpleRequest) == simpleRequest)
        #expect(try roundTrip(Grpc_Testing_SimpleRequest()) == Grpc_Testing_SimpleRequest())

        let simpleResponse = Grpc_Testing_SimpleResponse(
            payload: Grpc_Testing_Payload(body: [1, 2, 3]), username: "user", oauthScope: "scope",
            serverID: "server-1", grpclbRouteType: .backend, hostname: "host")
        #expect(try roundTrip(simpleResponse) == simpleResponse)

        let streamingRequest = Grpc_Testing_StreamingOutputCallRequest(
            responseType: .compressable,
            responseParameters: [
                Grpc_Testing_ResponseParameters(size: 31_415, intervalUs: 1000, compressed: true),
                Grpc_Testing_ResponseParameters(size: 9),
                Grpc_Testing_ResponseParameters(size: 0, intervalUs: 0, compressed: false),
            ],
            payload: Grpc_Testing_Payload(body: [0, 0, 0]), responseStatus: Grpc_Testing_EchoStatus(code: 13, message: "x"))
        #expect(try roundTrip(streamingRequest) == streamingRequest)

        let streamingResponse = Grpc_Testing_StreamingOutputCallResponse(payload: payload)
        #expect(try roundTrip(streamingResponse) == streamingResponse)

        let inputRequest = Grpc_Testing_StreamingInputCallRequest(payload: payload, expectCompressed: false)
        #expect(try roundTrip(inputRequest) == inputRequest)
        let inputResponse = Grpc_Testing_StreamingInputCallResponse(aggregatedPayloadSize: 74_922)
        #expect(try roundTrip(inputResponse) == inputResponse)
        let echo = Grpc_Testing_EchoStatus(code: -1, message: "m")
        #expect(try roundTrip(echo) == echo)
    }

    @Test func unrecognizedEnumValuesSurvive() throws {
        let task = Swapline_V1_Task(status: .unrecognized(77))
        #expect(try roundTrip(task).status == .unrecognized(77))
        #expect(Swapline_V1_TaskStatus(rawValue: 77) == .unrecognized(77))
        #expect(Swapline_V1_TaskStatus(rawValue: -3) == .unrecognized(-3))
        #expect(try roundTrip(Swapline_V1_Task(status: .unrecognized(-2))).status == .unrecognized(-2))
        let response = Grpc_Health_V1_HealthCheckResponse(status: .unrecognized(9))
        #expect(try roundTrip(response).status == .unrecognized(9))
    }

    @Test func enumRawValues() {
        #expect(Swapline_V1_TaskStatus.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 5])
        #expect(Swapline_V1_TaskStatus.allCases.map { Swapline_V1_TaskStatus(rawValue: $0.rawValue) } == Swapline_V1_TaskStatus.allCases)
        #expect(Swapline_V1_TaskStatus.cancelled.rawValue == 5)
        #expect(Grpc_Health_V1_HealthCheckResponse.ServingStatus.serviceUnknown.rawValue == 3)
        #expect(Grpc_Testing_GrpclbRouteType.backend.rawValue == 2)
        #expect(Grpc_Testing_PayloadType.compressable.rawValue == 0)
    }

    @Test func largeMessagesSpillOutOfTheStackArena() throws {
        // As large as MessageLimits allow: about 150 KiB, many heap chunks.
        var options: [String: String] = [:]
        for index in 0..<MessageLimits.mapEntries {
            options["option-\(index)"] = String(repeating: "v", count: MessageLimits.mapValueBytes - 200 + index) + unicode
        }
        let task = Swapline_V1_Task(
            taskID: String(repeating: "t", count: MessageLimits.idBytes), params: Swapline_V1_FaceSwapParams(options: options),
            error: String(repeating: "e", count: MessageLimits.textBytes))
        #expect(try roundTrip(task) == task)
    }

    @Test func encodeAppendsToTheBuffer() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        buffer.writeString("prefix")
        Swapline_V1_GetTaskRequest(taskID: "abc").encode(into: &buffer)
        #expect(buffer.readString(length: 6) == "prefix")
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: buffer).taskID == "abc")
    }

    @Test func decodesFromArraysAndBufferSlices() throws {
        let bytes: [UInt8] = Array(Swapline_V1_GetTaskRequest(taskID: "abc").serializedBuffer().readableBytesView)
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: bytes).taskID == "abc")
        var buffer = ByteBuffer(bytes: [0xFF, 0xFF] + bytes)
        buffer.moveReaderIndex(forwardBy: 2)
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: buffer).taskID == "abc")
    }

    @Test func embeddedNULCutsTheString() throws {
        // protobuf-c carries strings as C strings: both directions stop at U+0000.
        #expect(encoded(Swapline_V1_GetTaskRequest(taskID: "a\u{0}b")) == [0x0A, 0x01, 0x61])
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: [0x0A, 0x03, 0x61, 0x00, 0x62]).taskID == "a")
    }

    @Test func concurrentUse() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask { () throws -> Void in
                    for index in 0..<500 {
                        var task = fullTask
                        task.taskID = "task-\(worker)-\(index)"
                        #expect(try roundTrip(task) == task)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

@Suite struct LargeTaskRoundTripTests {
    @Test func aTaskLargerThanTheArenasStackPartRoundTrips() throws {
        let long = String(repeating: "x", count: 300)
        var task = fullTask
        task.result = Swapline_V1_TaskResult(
            outputURL: "https://cdn.example.com/\(long).jpg",
            outputs: ["jpg": "https://cdn.example.com/\(long).jpg", "gif": "https://cdn.example.com/\(long).gif", "webp": "https://cdn.example.com/\(long).webp"],
            processingTime: 1, jobID: "job", storageProvider: "local", outputProviders: ["jpg": "local", "gif": "local", "webp": "local"])
        #expect(try roundTrip(task) == task)
    }
}
