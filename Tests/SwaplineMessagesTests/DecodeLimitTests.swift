import NIOCore
import SwaplineMessages
import Testing

/// Crafted wire bytes over each of `MessageLimits`: refused with a message that names the
/// field and the limit, while the same shape at the limit decodes.
@Suite struct DecodeLimitTests {
    /// A length-delimited field (wire type 2) holding `payload`.
    private func field(_ number: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [number << 3 | 2] + varint(payload.count) + payload
    }

    private func varint(_ value: Int) -> [UInt8] {
        var value = UInt64(value)
        var bytes: [UInt8] = []
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        return bytes + [UInt8(value)]
    }

    private func decodingError<Message: ProtoMessage>(_ type: Message.Type, _ bytes: [UInt8]) -> String? {
        do {
            _ = try Message(protobufBytes: bytes)
            return nil
        } catch {
            return error.message
        }
    }

    /// FetchTaskRequest { repeated string workflows = 2 } with `count` empty entries.
    private func fetchRequest(emptyWorkflows count: Int) -> [UInt8] {
        Array(repeating: [UInt8](field(2, [])), count: count).flatMap { $0 }
    }

    @Test func emptyWorkflowEntriesPastTheLimit() throws {
        let atLimit = try Swapline_V1_FetchTaskRequest(protobufBytes: fetchRequest(emptyWorkflows: MessageLimits.workflowsPerFetch))
        #expect(atLimit.workflows.count == MessageLimits.workflowsPerFetch)
        #expect(
            decodingError(Swapline_V1_FetchTaskRequest.self, fetchRequest(emptyWorkflows: 40))
                == "swapline.v1.FetchTaskRequest.workflows has 40 entries; at most 32 are allowed")
        // Far past it, the wire walk refuses them before protobuf-c allocates for each.
        #expect(
            decodingError(Swapline_V1_FetchTaskRequest.self, fetchRequest(emptyWorkflows: 1_800_000))
                == "swapline.v1.FetchTaskRequest carries more than 16384 fields; at most 16384 are allowed")
    }

    @Test func wireFieldsAreCountedInNestedMessages() throws {
        // Each options entry is three fields (the entry, its key, its value): 5,461 entries
        // and the params field make 16,384, one more entry is over.
        let options = (MessageLimits.wireFields - 1) / 3
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, createRequest(options: options, key: [0x61], value: [0x62]))
                == "swapline.v1.CreateTaskRequest.params.options has 5461 entries; at most 64 are allowed")
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, createRequest(options: options + 1, key: [0x61], value: [0x62]))
                == "swapline.v1.CreateTaskRequest carries more than 16384 fields; at most 16384 are allowed")
    }

    @Test func malformedWireBytesAreLeftToProtobufC() {
        // A length past the end, a truncated varint, a group wire type: the walk stops and
        // protobuf-c's parse refuses them as before.
        for bytes: [UInt8] in [[0x12, 0x05, 0x01], [0x08, 0xFF], [0x0B]] {
            #expect(decodingError(Swapline_V1_CreateTaskRequest.self, bytes) == "malformed swapline.v1.CreateTaskRequest")
        }
    }

    @Test func longWorkflowName() {
        let name = [UInt8](repeating: UInt8(ascii: "w"), count: MessageLimits.nameBytes + 1)
        #expect(
            decodingError(Swapline_V1_FetchTaskRequest.self, field(2, name))
                == "swapline.v1.FetchTaskRequest.workflows is 129 bytes long; at most 128 are allowed")
    }

    /// CreateTaskRequest { params = 2 { map options = 5 } } with `count` entries `key → value`.
    private func createRequest(options count: Int, key: [UInt8] = [], value: [UInt8] = []) -> [UInt8] {
        let entry = field(5, field(1, key) + field(2, value))
        let params = Array(repeating: entry, count: count).flatMap { $0 }
        return field(2, params)
    }

    @Test func optionsEntriesPastTheLimit() throws {
        let atLimit = try Swapline_V1_CreateTaskRequest(protobufBytes: createRequest(options: MessageLimits.mapEntries))
        // Every entry has the empty key, so they collapse into one.
        #expect(atLimit.params?.options == ["": ""])
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, createRequest(options: 500_000))
                == "swapline.v1.CreateTaskRequest carries more than 16384 fields; at most 16384 are allowed")
    }

    @Test func longOptionKeyAndValue() {
        let longKey = [UInt8](repeating: UInt8(ascii: "k"), count: MessageLimits.mapKeyBytes + 1)
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, createRequest(options: 1, key: longKey))
                == "swapline.v1.CreateTaskRequest.params.options key is 129 bytes long; at most 128 are allowed")
        let longValue = [UInt8](repeating: UInt8(ascii: "v"), count: MessageLimits.mapValueBytes + 1)
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, createRequest(options: 1, key: Array("face".utf8), value: longValue))
                == "swapline.v1.CreateTaskRequest.params.options[face] is 2049 bytes long; at most 2048 are allowed")
    }

    @Test func longURLAndIDs() {
        let url = [UInt8](repeating: UInt8(ascii: "u"), count: MessageLimits.urlBytes + 1)
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, field(2, field(1, url)))
                == "swapline.v1.CreateTaskRequest.params.source_url is 4097 bytes long; at most 4096 are allowed")
        let id = [UInt8](repeating: UInt8(ascii: "i"), count: MessageLimits.idBytes + 1)
        #expect(
            decodingError(Swapline_V1_CreateTaskRequest.self, field(3, id))
                == "swapline.v1.CreateTaskRequest.idempotency_key is 129 bytes long; at most 128 are allowed")
        #expect(
            decodingError(Swapline_V1_FetchTaskRequest.self, field(1, id))
                == "swapline.v1.FetchTaskRequest.consumer_id is 129 bytes long; at most 128 are allowed")
        #expect(
            decodingError(Swapline_V1_GetTaskRequest.self, field(1, id))
                == "swapline.v1.GetTaskRequest.task_id is 129 bytes long; at most 128 are allowed")
    }

    @Test func resultOutputsInUpdateStatus() {
        // UpdateStatusRequest { result = 6 { map outputs = 2 } }
        let entry = field(2, field(1, Array("k".utf8)) + field(2, []))
        let outputs = Array(repeating: entry, count: MessageLimits.mapEntries + 1).flatMap { $0 }
        #expect(
            decodingError(Swapline_V1_UpdateStatusRequest.self, field(6, outputs))
                == "swapline.v1.UpdateStatusRequest.result.outputs has 65 entries; at most 64 are allowed")
    }

    @Test func valuesWithinTheLimitsRoundTrip() throws {
        let request = Swapline_V1_CreateTaskRequest(
            workflow: String(repeating: "w", count: MessageLimits.nameBytes),
            params: Swapline_V1_FaceSwapParams(
                sourceURL: String(repeating: "s", count: MessageLimits.urlBytes),
                options: Dictionary(uniqueKeysWithValues: (0..<MessageLimits.mapEntries).map {
                    (String(repeating: "k", count: MessageLimits.mapKeyBytes - 3) + "\($0 + 100)",
                     String(repeating: "v", count: MessageLimits.mapValueBytes))
                })),
            idempotencyKey: String(repeating: "i", count: MessageLimits.idBytes))
        #expect(try Swapline_V1_CreateTaskRequest(protobufBytes: encoded(request)) == request)
    }
}
