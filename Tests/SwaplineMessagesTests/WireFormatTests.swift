import NIOCore
import SwaplineMessages
import Testing

/// The readable bytes of `message`'s encoding.
func encoded(_ message: some ProtoMessage) -> [UInt8] {
    Array(message.serializedBuffer().readableBytesView)
}

/// Expects `bytes` not to decode as `Message`.
func expectMalformed<Message: ProtoMessage>(
    _ type: Message.Type, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(throws: ProtoDecodingError.self, sourceLocation: sourceLocation) {
        try Message(protobufBytes: bytes)
    }
}

@Suite struct KnownBytesTests {
    @Test func getTaskRequest() {
        // field 1, wire type 2 (0x0A), length 3, "abc"
        #expect(encoded(Swapline_V1_GetTaskRequest(taskID: "abc")) == [0x0A, 0x03, 0x61, 0x62, 0x63])
    }

    @Test func task() throws {
        let task = Swapline_V1_Task(
            taskID: "t", params: Swapline_V1_FaceSwapParams(sourceURL: "s"), status: .pending, createdAtMs: 300,
            progress: 0.5, priority: -1)
        let expected: [UInt8] = [
            0x0A, 0x01, 0x74,  // 1: task_id "t"
            0x2A, 0x03, 0x0A, 0x01, 0x73,  // 5: params { 1: source_url "s" }
            0x30, 0x01,  // 6: status PENDING
            0x40, 0xAC, 0x02,  // 8: created_at_ms 300 (varint)
            0x55, 0x00, 0x00, 0x00, 0x3F,  // 10: progress 0.5 (fixed32, little endian)
            0x70, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,  // 14: priority -1 (10-byte varint)
        ]
        #expect(encoded(task) == expected)
        #expect(try Swapline_V1_Task(protobufBytes: expected) == task)
    }

    @Test func mapEntry() throws {
        let params = Swapline_V1_FaceSwapParams(options: ["k": "v"])
        // 5: options entry { 1: key "k", 2: value "v" }
        let expected: [UInt8] = [0x2A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76]
        #expect(encoded(params) == expected)
        #expect(try Swapline_V1_FaceSwapParams(protobufBytes: expected) == params)
    }

    @Test func repeatedStrings() {
        let request = Swapline_V1_FetchTaskRequest(consumerID: "c", workflows: ["a", ""], waitMs: 1000)
        #expect(encoded(request) == [0x0A, 0x01, 0x63, 0x12, 0x01, 0x61, 0x12, 0x00, 0x18, 0xE8, 0x07])
    }

    @Test func doubleField() {
        // 3: processing_time 12.5 (fixed64 0x4029000000000000, little endian)
        #expect(encoded(Swapline_V1_TaskResult(processingTime: 12.5)) == [0x19, 0, 0, 0, 0, 0, 0, 0x29, 0x40])
    }

    @Test func health() {
        #expect(encoded(Grpc_Health_V1_HealthCheckResponse(status: .serving)) == [0x08, 0x01])
        #expect(encoded(Grpc_Health_V1_HealthCheckResponse(status: .unknown)) == [])
        #expect(encoded(Grpc_Health_V1_HealthCheckRequest(service: "")) == [])
    }

    @Test func interopPresenceAndBytes() {
        // 2: response_size 5; 6: response_compressed BoolValue{false} (present, zero length)
        #expect(encoded(Grpc_Testing_SimpleRequest(responseSize: 5, responseCompressed: false)) == [0x10, 0x05, 0x32, 0x00])
        #expect(encoded(Grpc_Testing_Payload(body: [1, 2, 3])) == [0x12, 0x03, 0x01, 0x02, 0x03])
        // 2: response_parameters { 1: size 1, 3: compressed { 1: true } }
        #expect(
            encoded(Grpc_Testing_StreamingOutputCallRequest(responseParameters: [.init(size: 1, compressed: true)]))
                == [0x12, 0x06, 0x08, 0x01, 0x1A, 0x02, 0x08, 0x01])
    }
}

@Suite struct DecodingTests {
    @Test func emptyInputDecodesToDefaults() throws {
        #expect(try Swapline_V1_Task(protobufBytes: ByteBuffer()) == Swapline_V1_Task())
        #expect(try Swapline_V1_CreateTaskRequest(protobufBytes: []) == Swapline_V1_CreateTaskRequest())
        #expect(try Grpc_Testing_SimpleRequest(protobufBytes: []) == Grpc_Testing_SimpleRequest())
        #expect(try Grpc_Testing_Empty(protobufBytes: []) == Grpc_Testing_Empty())
        #expect(try Swapline_V1_Task(protobufBytes: []).status == .unspecified)
    }

    @Test func unknownFieldsAreIgnored() throws {
        let bytes: [UInt8] = [
            0xB8, 0x06, 0x2A,  // 103: varint 42
            0x0A, 0x01, 0x78,  // 1: task_id "x"
            0xA2, 0x06, 0x02, 0x68, 0x69,  // 100: length-delimited "hi"
            0xAD, 0x06, 1, 2, 3, 4,  // 101: fixed32
            0xB1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,  // 102: fixed64
        ]
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: bytes).taskID == "x")
        // A Task read as a GetTaskRequest keeps field 1 and skips the rest.
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: encoded(fullTask)).taskID == fullTask.taskID)
    }

    @Test func lastValueWinsForRepeatedScalarsAndMapKeys() throws {
        #expect(try Swapline_V1_GetTaskRequest(protobufBytes: [0x0A, 0x01, 0x61, 0x0A, 0x01, 0x62]).taskID == "b")
        let twice: [UInt8] = [0x2A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x31, 0x2A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x32]
        #expect(try Swapline_V1_FaceSwapParams(protobufBytes: twice).options == ["k": "2"])
    }

    @Test func truncatedVarint() {
        expectMalformed(Swapline_V1_Task.self, [0x20, 0x80])  // 4: target_port, continuation bit set, then nothing
        expectMalformed(Swapline_V1_Task.self, [0x20])  // tag without a value
        expectMalformed(Swapline_V1_Task.self, [0x80])  // truncated tag
    }

    @Test func wrongWireType() {
        expectMalformed(Swapline_V1_GetTaskRequest.self, [0x08, 0x01])  // 1: task_id sent as a varint
        expectMalformed(Swapline_V1_Task.self, [0x22, 0x01, 0x00])  // 4: target_port sent length-delimited
    }

    @Test func lengthPastTheEnd() {
        expectMalformed(Swapline_V1_GetTaskRequest.self, [0x0A, 0x05, 0x61])
        expectMalformed(Swapline_V1_Task.self, [0x2A, 0x7F, 0x0A, 0x01, 0x73])  // params
        expectMalformed(Grpc_Testing_Payload.self, [0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01])  // huge bytes length
    }

    @Test func malformedNestedMessage() {
        expectMalformed(Swapline_V1_CreateTaskRequest.self, [0x12, 0x02, 0x0A, 0x05])  // params { source_url: too long }
    }

    @Test func invalidUTF8() {
        expectMalformed(Swapline_V1_GetTaskRequest.self, [0x0A, 0x02, 0xC3, 0x28])
        expectMalformed(Swapline_V1_GetTaskRequest.self, [0x0A, 0x01, 0xFF])
        expectMalformed(Swapline_V1_GetTaskRequest.self, [0x0A, 0x03, 0xED, 0xA0, 0x80])  // UTF-16 surrogate
        // In a nested map key: CreateTaskRequest { 2: params { 5: options { 1: key 0xFF } } }
        expectMalformed(Swapline_V1_CreateTaskRequest.self, [0x12, 0x05, 0x2A, 0x03, 0x0A, 0x01, 0xFF])
        // In a repeated string.
        expectMalformed(Swapline_V1_FetchTaskRequest.self, [0x12, 0x01, 0x80])
        #expect(throws: ProtoDecodingError.self) {
            try Swapline_V1_GetTaskRequest(protobufBytes: [0x0A, 0x01, 0xFF])
        }
    }

    @Test func utf8ErrorSaysSo() {
        do {
            _ = try Swapline_V1_FetchTaskRequest(protobufBytes: [0x12, 0x01, 0x80])
            Issue.record("decoded invalid UTF-8")
        } catch {
            #expect(error.message == "swapline.v1.FetchTaskRequest.workflows is not valid UTF-8")
        }
    }

    @Test func errorNamesTheMessage() {
        do {
            _ = try Swapline_V1_CreateTaskRequest(protobufBytes: [0x0A, 0x05])
            Issue.record("decoded malformed bytes")
        } catch {
            #expect(error.message == "malformed swapline.v1.CreateTaskRequest")
            #expect(error.description == error.message)
        }
    }

    @Test func garbageNeverCrashes() {
        var generator = SplitMix64(seed: 0x5EED)
        let valid = encoded(Swapline_V1_TaskEvent(task: fullTask, sequence: 1))
        for length in 0..<valid.count {  // every truncation of a valid message
            _ = try? Swapline_V1_TaskEvent(protobufBytes: Array(valid[..<length]))
        }
        for _ in 0..<3_000 {  // random bit flips of a valid message, and random bytes
            var mutated = valid
            for _ in 0..<Int(generator.next() % 4 + 1) {
                mutated[Int(generator.next() % UInt64(mutated.count))] ^= UInt8(truncatingIfNeeded: generator.next())
            }
            _ = try? Swapline_V1_TaskEvent(protobufBytes: mutated)
            let random = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = try? Swapline_V1_Task(protobufBytes: random)
            _ = try? Grpc_Testing_StreamingOutputCallRequest(protobufBytes: random)
            _ = try? Swapline_V1_UpdateStatusRequest(protobufBytes: random)
        }
    }
}

/// A small deterministic random number generator for the fuzz test.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
