// Swift values of proto/grpc/health/v1/health.proto (package grpc.health.v1).
internal import CSwaplineProto

/// Asks for the health of one service (`grpc.health.v1.HealthCheckRequest`).
public struct Grpc_Health_V1_HealthCheckRequest: Sendable, Equatable {
    /// Fully qualified service name; "" means the whole server.
    public var service: String

    public init(service: String = "") { self.service = service }
}

extension Grpc_Health_V1_HealthCheckRequest: CBridged {
    init(c: Grpc__Health__V1__HealthCheckRequest) throws(FieldDecodingError) {
        self.init(service: try CField.string(c.service, field: "service", maxBytes: MessageLimits.nameBytes))
    }

    func fill(_ c: inout Grpc__Health__V1__HealthCheckRequest, arena: inout CArena) {
        c.service = arena.cString(service)
    }
}

/// The health of a service (`grpc.health.v1.HealthCheckResponse`).
public struct Grpc_Health_V1_HealthCheckResponse: Sendable, Equatable {
    /// Serving state of a service (`grpc.health.v1.HealthCheckResponse.ServingStatus`).
    public enum ServingStatus: ProtoEnum {
        case unknown, serving, notServing, serviceUnknown
        case unrecognized(Int32)

        public static let allCases: [Self] = [.unknown, .serving, .notServing, .serviceUnknown]

        public var rawValue: Int32 {
            if case .unrecognized(let value) = self { return value }
            return knownRawValue()
        }
    }

    public var status: ServingStatus

    public init(status: ServingStatus = .unknown) { self.status = status }
}

extension Grpc_Health_V1_HealthCheckResponse: CBridged {
    init(c: Grpc__Health__V1__HealthCheckResponse) throws(FieldDecodingError) {
        self.init(status: CField.enum(c.status))
    }

    func fill(_ c: inout Grpc__Health__V1__HealthCheckResponse, arena: inout CArena) {
        c.status = status.c()
    }
}
