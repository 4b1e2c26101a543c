import SwaplineCore
import SwaplineMessages

/// The REST shim's readers of the original FastAPI request bodies, into the swapline.v1
/// messages, so a REST route needs nothing but its RPC.
extension LegacyJSON {
    /// `POST /api/face-swap/create-task`: the original flat body, plus the RPC's optional fields.
    static func createTaskRequest(_ body: JSONValue) -> Result<Swapline_V1_CreateTaskRequest, BodyErrors> {
        BodyReader.read(body) { fields in
            Swapline_V1_CreateTaskRequest(
                workflow: fields.string("workflow", maxBytes: MessageLimits.nameBytes), params: faceSwapParams(&fields),
                idempotencyKey: fields.string("idempotency_key", maxBytes: MessageLimits.idBytes),
                priority: fields.int32("priority"))
        }
    }

    /// `POST /api/face-swap/process`.
    static func processSyncRequest(_ body: JSONValue) -> Result<Swapline_V1_ProcessSyncRequest, BodyErrors> {
        BodyReader.read(body) { fields in Swapline_V1_ProcessSyncRequest(params: faceSwapParams(&fields)) }
    }

    /// `POST /api/comm/task/update`.
    static func updateStatusRequest(_ body: JSONValue) -> Result<Swapline_V1_UpdateStatusRequest, BodyErrors> {
        BodyReader.read(body) { fields in
            Swapline_V1_UpdateStatusRequest(
                taskID: fields.string("task_id", required: true, maxBytes: MessageLimits.idBytes),
                leaseID: fields.string("lease_id", required: true, maxBytes: MessageLimits.idBytes),
                status: fields.status("status"), progress: fields.float("progress"),
                message: fields.string("message", maxBytes: MessageLimits.textBytes),
                result: fields.object("result") { result in
                    Swapline_V1_TaskResult(
                        outputURL: result.string("output_url", maxBytes: MessageLimits.urlBytes),
                        outputs: result.stringMap("outputs"), processingTime: result.double("processing_time"),
                        jobID: result.string("job_id", maxBytes: MessageLimits.nameBytes),
                        storageProvider: result.string("storage_provider", maxBytes: MessageLimits.nameBytes),
                        outputProviders: result.stringMap("output_providers"))
                },
                error: fields.string("error", maxBytes: MessageLimits.textBytes))
        }
    }

    private static func faceSwapParams(_ fields: inout BodyReader) -> Swapline_V1_FaceSwapParams {
        Swapline_V1_FaceSwapParams(
            sourceURL: fields.string("source_url", required: true, maxBytes: MessageLimits.urlBytes),
            targetURL: fields.string("target_url", required: true, maxBytes: MessageLimits.urlBytes),
            resolution: fields.string("resolution", maxBytes: MessageLimits.nameBytes),
            model: fields.string("model", maxBytes: MessageLimits.nameBytes), options: fields.stringMap("options"))
    }
}

/// FastAPI's 422 `detail` list: one entry per field that does not fit the schema, at most
/// `BodyReader.maxIssues` of them.
struct BodyErrors: Error {
    var details: [JSONValue]
}

/// Reads the fields of a JSON request object the way FastAPI's pydantic models do: required
/// fields present, every present field of its declared type (`null` counts as absent for an
/// optional field), unknown fields ignored. Problems are collected, not thrown, so the client
/// hears of all of them at once. Whether a value makes sense (a URL, a model name) is the RPC
/// handler's business, not this reader's.
///
/// Unlike FastAPI, the answer is bounded whatever the body (it is built on the event loop,
/// and FastAPI's echoes of the whole body in each issue make it many times the request's
/// size): at most `maxIssues` issues are reported, and each echoed `input` (and `loc`) is cut
/// down by `bounded(_:)`.
struct BodyReader {
    /// Issues reported in one 422; the rest are dropped (fix these and ask again).
    static let maxIssues = 20
    /// Echoed strings keep this many characters, followed by "…".
    static let maxEchoedStringLength = 64
    /// Echoed arrays and objects keep this many elements, and containers nested deeper than
    /// `maxEchoedDepth` are echoed as "…".
    static let maxEchoedElements = 5
    static let maxEchoedDepth = 2

    private let members: JSONValue
    private let location: [JSONValue]
    private(set) var details: [JSONValue] = [] {
        didSet { if details.count > Self.maxIssues { details.removeLast(details.count - Self.maxIssues) } }
    }

    private init(members: JSONValue, location: [JSONValue]) {
        self.members = members
        self.location = location
    }

    static func read<Message>(_ body: JSONValue, _ build: (inout BodyReader) -> Message) -> Result<Message, BodyErrors> {
        guard case .object = body else {
            return .failure(BodyErrors(details: [issue(
                "model_attributes_type", [.string("body")], "Input should be a valid dictionary or object to extract fields from", body)]))
        }
        var reader = BodyReader(members: body, location: [.string("body")])
        let message = build(&reader)
        return reader.details.isEmpty ? .success(message) : .failure(BodyErrors(details: reader.details))
    }

    /// A string of at most `maxBytes` UTF-8 bytes (one of `MessageLimits`, as on the gRPC surface).
    mutating func string(_ key: String, required: Bool = false, maxBytes: Int) -> String {
        switch present(key, required: required) {
        case .string(let value)? where value.utf8.count > maxBytes:
            details.append(Self.tooLong(location + [.string(key)], value, maxBytes: maxBytes))
        case .string(let value)?: return value
        case let other?: fail("string_type", key, "Input should be a valid string", other)
        case nil: break
        }
        return ""
    }

    mutating func int32(_ key: String) -> Int32 {
        switch present(key, required: false) {
        case .integer(let value)? where Int64(Int32.min)...Int64(Int32.max) ~= value: return Int32(value)
        case .integer(let value)?:
            fail("int_type", key, "Input should be a valid 32-bit integer", .integer(value))
        case let other?: fail("int_type", key, "Input should be a valid integer", other)
        case nil: break
        }
        return 0
    }

    mutating func double(_ key: String) -> Double {
        switch present(key, required: false) {
        case .integer(let value)?: return Double(value)
        case .number(let value)? where value.isFinite: return value
        case let other?: fail("float_type", key, "Input should be a valid number", other)
        case nil: break
        }
        return 0
    }

    mutating func float(_ key: String) -> Float {
        Float(double(key))
    }

    /// A map of strings within `MessageLimits`' entry count and key and value lengths.
    mutating func stringMap(_ key: String) -> [String: String] {
        guard let value = present(key, required: false) else { return [:] }
        guard case .object(let entries) = value else {
            fail("dict_type", key, "Input should be a valid dictionary", value)
            return [:]
        }
        guard entries.count <= MessageLimits.mapEntries else {
            let limit = MessageLimits.mapEntries
            details.append(Self.issue(
                "too_long", location + [.string(key)],
                "Dictionary should have at most \(limit) items after validation, not \(entries.count)", value,
                context: ["field_type": "Dictionary", "max_length": "\(limit)", "actual_length": "\(entries.count)"]))
            return [:]
        }
        var map: [String: String] = [:]
        for (name, entry) in entries {
            let entryLocation = location + [.string(key), .string(name)]
            if name.utf8.count > MessageLimits.mapKeyBytes {
                details.append(Self.tooLong(entryLocation + [.string("[key]")], name, maxBytes: MessageLimits.mapKeyBytes))
                continue
            }
            guard case .string(let text) = entry else {
                guard details.count < Self.maxIssues else { continue }
                details.append(Self.issue("string_type", entryLocation, "Input should be a valid string", entry))
                continue
            }
            guard text.utf8.count <= MessageLimits.mapValueBytes else {
                details.append(Self.tooLong(entryLocation, text, maxBytes: MessageLimits.mapValueBytes))
                continue
            }
            map[name] = text
        }
        return map
    }

    /// A task status by its legacy name; required.
    mutating func status(_ key: String) -> Swapline_V1_TaskStatus {
        guard let value = present(key, required: true) else { return .unspecified }
        if case .string(let name) = value, let status = LegacyJSON.statusNames.first(where: { $0.1 == name })?.0 {
            return status
        }
        let expected = "'PENDING', 'PROCESSING', 'COMPLETED', 'FAILED' or 'CANCELLED'"
        details.append(
            Self.issue("enum", location + [.string(key)], "Input should be \(expected)", value, context: ["expected": expected]))
        return .unspecified
    }

    /// A nested object read with its own fields; `nil` when absent.
    mutating func object<Message>(_ key: String, _ build: (inout BodyReader) -> Message) -> Message? {
        guard let value = present(key, required: false) else { return nil }
        guard case .object = value else {
            fail("model_attributes_type", key, "Input should be a valid dictionary or object to extract fields from", value)
            return nil
        }
        var nested = BodyReader(members: value, location: location + [.string(key)])
        let message = build(&nested)
        details += nested.details
        return message
    }

    private mutating func present(_ key: String, required: Bool) -> JSONValue? {
        switch members[key] {
        case nil, .null?:
            if required {
                if let value = members[key] {
                    fail("string_type", key, "Input should be a valid string", value)
                } else {
                    details.append(Self.issue("missing", location + [.string(key)], "Field required", members))
                }
            }
            return nil
        case let value?:
            return value
        }
    }

    private mutating func fail(_ type: String, _ key: String, _ message: String, _ input: JSONValue) {
        details.append(Self.issue(type, location + [.string(key)], message, input))
    }

    /// pydantic's `string_too_long`, in UTF-8 bytes rather than characters (the limits are the
    /// gRPC surface's, which counts bytes).
    static func tooLong(_ location: [JSONValue], _ value: String, maxBytes: Int) -> JSONValue {
        issue(
            "string_too_long", location, "String should have at most \(maxBytes) bytes", .string(value),
            context: ["max_length": "\(maxBytes)"])
    }

    static func issue(
        _ type: String, _ location: [JSONValue], _ message: String, _ input: JSONValue, context: [String: String] = [:]
    ) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string(type)), ("loc", .array(location.map { bounded($0) })), ("msg", .string(message)),
            ("input", bounded(input)),
        ]
        if !context.isEmpty { members.append(("ctx", .object(context.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))) }
        return .object(members)
    }

    /// `value` cut down for echoing: long strings (keys too) shortened, containers shortened
    /// to their first elements, and nesting below `maxEchoedDepth` replaced by "…".
    static func bounded(_ value: JSONValue, depth: Int = 0) -> JSONValue {
        switch value {
        case .string(let text): return .string(boundedString(text))
        case .array(let items):
            guard depth < maxEchoedDepth else { return .string("…") }
            return .array(items.prefix(maxEchoedElements).map { bounded($0, depth: depth + 1) })
        case .object(let entries):
            guard depth < maxEchoedDepth else { return .string("…") }
            return .object(entries.prefix(maxEchoedElements).map { (boundedString($0.0), bounded($0.1, depth: depth + 1)) })
        case .null, .bool, .integer, .number: return value
        }
    }

    private static func boundedString(_ text: String) -> String {
        text.count > maxEchoedStringLength ? text.prefix(maxEchoedStringLength) + "…" : text
    }
}
