// Swift values of proto/grpc/testing/{empty,messages}.proto (package grpc.testing), the
// gRPC interop test messages. `grpc.testing.BoolValue` fields appear as `Bool?`.
internal import CSwaplineProto

/// Kind of payload data (`grpc.testing.PayloadType`).
public enum Grpc_Testing_PayloadType: ProtoEnum {
    case compressable
    case unrecognized(Int32)

    public static let allCases: [Self] = [.compressable]

    public var rawValue: Int32 {
        if case .unrecognized(let value) = self { return value }
        return knownRawValue()
    }
}

/// How a call reached the server with respect to gRPCLB (`grpc.testing.GrpclbRouteType`).
public enum Grpc_Testing_GrpclbRouteType: ProtoEnum {
    case unknown, fallback, backend
    case unrecognized(Int32)

    public static let allCases: [Self] = [.unknown, .fallback, .backend]

    public var rawValue: Int32 {
        if case .unrecognized(let value) = self { return value }
        return knownRawValue()
    }
}

/// A message with no fields (`grpc.testing.Empty`).
public struct Grpc_Testing_Empty: Sendable, Equatable {
    public init() {}
}

extension Grpc_Testing_Empty: CBridged {
    init(c: Grpc__Testing__Empty) {}

    func fill(_ c: inout Grpc__Testing__Empty, arena: inout CArena) {}
}

/// `grpc.testing.BoolValue`, seen from Swift as a `Bool?` field.
struct BoolValueMessage: CBridged {
    var value: Bool

    init(_ value: Bool) { self.value = value }

    init(c: Grpc__Testing__BoolValue) { value = c.value != 0 }

    func fill(_ c: inout Grpc__Testing__BoolValue, arena: inout CArena) { c.value = value ? 1 : 0 }

    static func read(_ c: UnsafeMutablePointer<Grpc__Testing__BoolValue>?) -> Bool? {
        c.map { $0.pointee.value != 0 }
    }
}

/// A block of filler data (`grpc.testing.Payload`).
public struct Grpc_Testing_Payload: Sendable, Equatable {
    public var type: Grpc_Testing_PayloadType
    public var body: [UInt8]

    public init(type: Grpc_Testing_PayloadType = .compressable, body: [UInt8] = []) {
        self.type = type
        self.body = body
    }
}

extension Grpc_Testing_Payload: CBridged {
    init(c: Grpc__Testing__Payload) {
        self.init(type: CField.enum(c.type), body: CField.bytes(c.body))
    }

    func fill(_ c: inout Grpc__Testing__Payload, arena: inout CArena) {
        c.type = type.c()
        c.body = arena.bytes(body)
    }
}

/// A status for the server to end the call with (`grpc.testing.EchoStatus`).
public struct Grpc_Testing_EchoStatus: Sendable, Equatable {
    public var code: Int32
    public var message: String

    public init(code: Int32 = 0, message: String = "") {
        self.code = code
        self.message = message
    }
}

extension Grpc_Testing_EchoStatus: CBridged {
    init(c: Grpc__Testing__EchoStatus) throws(FieldDecodingError) {
        self.init(code: c.code, message: try CField.string(c.message, field: "message"))
    }

    func fill(_ c: inout Grpc__Testing__EchoStatus, arena: inout CArena) {
        c.code = code
        c.message = arena.cString(message)
    }
}

/// Request of a unary call (`grpc.testing.SimpleRequest`).
public struct Grpc_Testing_SimpleRequest: Sendable, Equatable {
    public var responseType: Grpc_Testing_PayloadType
    public var responseSize: Int32
    public var payload: Grpc_Testing_Payload?
    public var fillUsername: Bool
    public var fillOauthScope: Bool
    public var responseCompressed: Bool?
    public var responseStatus: Grpc_Testing_EchoStatus?
    public var expectCompressed: Bool?
    public var fillServerID: Bool
    public var fillGrpclbRouteType: Bool

    public init(
        responseType: Grpc_Testing_PayloadType = .compressable, responseSize: Int32 = 0,
        payload: Grpc_Testing_Payload? = nil, fillUsername: Bool = false, fillOauthScope: Bool = false,
        responseCompressed: Bool? = nil, responseStatus: Grpc_Testing_EchoStatus? = nil,
        expectCompressed: Bool? = nil, fillServerID: Bool = false, fillGrpclbRouteType: Bool = false
    ) {
        self.responseType = responseType
        self.responseSize = responseSize
        self.payload = payload
        self.fillUsername = fillUsername
        self.fillOauthScope = fillOauthScope
        self.responseCompressed = responseCompressed
        self.responseStatus = responseStatus
        self.expectCompressed = expectCompressed
        self.fillServerID = fillServerID
        self.fillGrpclbRouteType = fillGrpclbRouteType
    }
}

extension Grpc_Testing_SimpleRequest: CBridged {
    init(c: Grpc__Testing__SimpleRequest) throws(FieldDecodingError) {
        self.init(
            responseType: CField.enum(c.response_type), responseSize: c.response_size,
            payload: try CField.message(c.payload, field: "payload"), fillUsername: c.fill_username != 0,
            fillOauthScope: c.fill_oauth_scope != 0, responseCompressed: BoolValueMessage.read(c.response_compressed),
            responseStatus: try CField.message(c.response_status, field: "response_status"),
            expectCompressed: BoolValueMessage.read(c.expect_compressed), fillServerID: c.fill_server_id != 0,
            fillGrpclbRouteType: c.fill_grpclb_route_type != 0)
    }

    func fill(_ c: inout Grpc__Testing__SimpleRequest, arena: inout CArena) {
        c.response_type = responseType.c()
        c.response_size = responseSize
        c.payload = arena.message(payload)
        c.fill_username = fillUsername ? 1 : 0
        c.fill_oauth_scope = fillOauthScope ? 1 : 0
        c.response_compressed = arena.message(responseCompressed.map(BoolValueMessage.init))
        c.response_status = arena.message(responseStatus)
        c.expect_compressed = arena.message(expectCompressed.map(BoolValueMessage.init))
        c.fill_server_id = fillServerID ? 1 : 0
        c.fill_grpclb_route_type = fillGrpclbRouteType ? 1 : 0
    }
}

/// Response of a unary call (`grpc.testing.SimpleResponse`).
public struct Grpc_Testing_SimpleResponse: Sendable, Equatable {
    public var payload: Grpc_Testing_Payload?
    public var username: String
    public var oauthScope: String
    public var serverID: String
    public var grpclbRouteType: Grpc_Testing_GrpclbRouteType
    public var hostname: String

    public init(
        payload: Grpc_Testing_Payload? = nil, username: String = "", oauthScope: String = "",
        serverID: String = "", grpclbRouteType: Grpc_Testing_GrpclbRouteType = .unknown, hostname: String = ""
    ) {
        self.payload = payload
        self.username = username
        self.oauthScope = oauthScope
        self.serverID = serverID
        self.grpclbRouteType = grpclbRouteType
        self.hostname = hostname
    }
}

extension Grpc_Testing_SimpleResponse: CBridged {
    init(c: Grpc__Testing__SimpleResponse) throws(FieldDecodingError) {
        self.init(
            payload: try CField.message(c.payload, field: "payload"), username: try CField.string(c.username, field: "username"),
            oauthScope: try CField.string(c.oauth_scope, field: "oauth_scope"), serverID: try CField.string(c.server_id, field: "server_id"),
            grpclbRouteType: CField.enum(c.grpclb_route_type), hostname: try CField.string(c.hostname, field: "hostname"))
    }

    func fill(_ c: inout Grpc__Testing__SimpleResponse, arena: inout CArena) {
        c.payload = arena.message(payload)
        c.username = arena.cString(username)
        c.oauth_scope = arena.cString(oauthScope)
        c.server_id = arena.cString(serverID)
        c.grpclb_route_type = grpclbRouteType.c()
        c.hostname = arena.cString(hostname)
    }
}

/// One message of a client stream (`grpc.testing.StreamingInputCallRequest`).
public struct Grpc_Testing_StreamingInputCallRequest: Sendable, Equatable {
    public var payload: Grpc_Testing_Payload?
    public var expectCompressed: Bool?

    public init(payload: Grpc_Testing_Payload? = nil, expectCompressed: Bool? = nil) {
        self.payload = payload
        self.expectCompressed = expectCompressed
    }
}

extension Grpc_Testing_StreamingInputCallRequest: CBridged {
    init(c: Grpc__Testing__StreamingInputCallRequest) throws(FieldDecodingError) {
        self.init(payload: try CField.message(c.payload, field: "payload"), expectCompressed: BoolValueMessage.read(c.expect_compressed))
    }

    func fill(_ c: inout Grpc__Testing__StreamingInputCallRequest, arena: inout CArena) {
        c.payload = arena.message(payload)
        c.expect_compressed = arena.message(expectCompressed.map(BoolValueMessage.init))
    }
}

/// Response to a client stream (`grpc.testing.StreamingInputCallResponse`).
public struct Grpc_Testing_StreamingInputCallResponse: Sendable, Equatable {
    public var aggregatedPayloadSize: Int32

    public init(aggregatedPayloadSize: Int32 = 0) { self.aggregatedPayloadSize = aggregatedPayloadSize }
}

extension Grpc_Testing_StreamingInputCallResponse: CBridged {
    init(c: Grpc__Testing__StreamingInputCallResponse) {
        self.init(aggregatedPayloadSize: c.aggregated_payload_size)
    }

    func fill(_ c: inout Grpc__Testing__StreamingInputCallResponse, arena: inout CArena) {
        c.aggregated_payload_size = aggregatedPayloadSize
    }
}

/// Shape of one response of a server stream (`grpc.testing.ResponseParameters`).
public struct Grpc_Testing_ResponseParameters: Sendable, Equatable {
    /// Payload body size in bytes.
    public var size: Int32
    /// Delay before the response, in microseconds.
    public var intervalUs: Int32
    public var compressed: Bool?

    public init(size: Int32 = 0, intervalUs: Int32 = 0, compressed: Bool? = nil) {
        self.size = size
        self.intervalUs = intervalUs
        self.compressed = compressed
    }
}

extension Grpc_Testing_ResponseParameters: CBridged {
    init(c: Grpc__Testing__ResponseParameters) {
        self.init(size: c.size, intervalUs: c.interval_us, compressed: BoolValueMessage.read(c.compressed))
    }

    func fill(_ c: inout Grpc__Testing__ResponseParameters, arena: inout CArena) {
        c.size = size
        c.interval_us = intervalUs
        c.compressed = arena.message(compressed.map(BoolValueMessage.init))
    }
}

/// Request of a streaming call (`grpc.testing.StreamingOutputCallRequest`).
public struct Grpc_Testing_StreamingOutputCallRequest: Sendable, Equatable {
    public var responseType: Grpc_Testing_PayloadType
    public var responseParameters: [Grpc_Testing_ResponseParameters]
    public var payload: Grpc_Testing_Payload?
    public var responseStatus: Grpc_Testing_EchoStatus?

    public init(
        responseType: Grpc_Testing_PayloadType = .compressable,
        responseParameters: [Grpc_Testing_ResponseParameters] = [], payload: Grpc_Testing_Payload? = nil,
        responseStatus: Grpc_Testing_EchoStatus? = nil
    ) {
        self.responseType = responseType
        self.responseParameters = responseParameters
        self.payload = payload
        self.responseStatus = responseStatus
    }
}

extension Grpc_Testing_StreamingOutputCallRequest: CBridged {
    init(c: Grpc__Testing__StreamingOutputCallRequest) throws(FieldDecodingError) {
        self.init(
            responseType: CField.enum(c.response_type),
            responseParameters: try CField.messages(
                c.n_response_parameters, c.response_parameters, field: "response_parameters",
                maxCount: MessageLimits.interopResponseParameters),
            payload: try CField.message(c.payload, field: "payload"), responseStatus: try CField.message(c.response_status, field: "response_status"))
    }

    func fill(_ c: inout Grpc__Testing__StreamingOutputCallRequest, arena: inout CArena) {
        c.response_type = responseType.c()
        (c.n_response_parameters, c.response_parameters) = arena.messages(responseParameters)
        c.payload = arena.message(payload)
        c.response_status = arena.message(responseStatus)
    }
}

/// One response of a streaming call (`grpc.testing.StreamingOutputCallResponse`).
public struct Grpc_Testing_StreamingOutputCallResponse: Sendable, Equatable {
    public var payload: Grpc_Testing_Payload?

    public init(payload: Grpc_Testing_Payload? = nil) { self.payload = payload }
}

extension Grpc_Testing_StreamingOutputCallResponse: CBridged {
    init(c: Grpc__Testing__StreamingOutputCallResponse) throws(FieldDecodingError) {
        self.init(payload: try CField.message(c.payload, field: "payload"))
    }

    func fill(_ c: inout Grpc__Testing__StreamingOutputCallResponse, arena: inout CArena) {
        c.payload = arena.message(payload)
    }
}
