import RPCCore
import SwaplineMessages

/// Bearer-token authentication and role checks: the interceptor every call of every surface
/// passes through when the server has tokens (`AccessTokens`).
///
/// `grpc.health.v1.Health` stays open (load balancers hold no token), and so does server
/// reflection (v1 and v1alpha: it reveals only the public contract). `TaskService` needs a
/// `client` token, `ConsumerService` a `consumer` token, every other service (the interop
/// test service, later admin calls) an `admin` token, and an `admin` token may call
/// everything. A call without a valid token ends `UNAUTHENTICATED` (REST: 401 with
/// `WWW-Authenticate: Bearer`), one with a token of another role `PERMISSION_DENIED` (403).
/// The caller it establishes is what task ownership is decided by.
struct AccessControl: ServerInterceptor {
    let tokens: AccessTokens

    /// The role a service needs; `nil` for open services.
    static func requiredRole(service: String) -> AccessRole? {
        switch service {
        case Grpc_Health_V1_Health.name, Grpc_Reflection_V1_ServerReflection.name, Grpc_Reflection_V1alpha_ServerReflection.name: return nil
        case Swapline_V1_TaskService.name: return .client
        case Swapline_V1_ConsumerService.name: return .consumer
        default: return .admin
        }
    }

    func intercept(_ context: inout ServerContext) -> GRPCStatus? {
        guard let required = Self.requiredRole(service: context.method.service) else { return nil }
        guard let token = Self.bearerToken(in: context.metadata) else {
            return GRPCStatus(.unauthenticated, "missing bearer token: send 'authorization: Bearer <token>'")
        }
        guard let caller = tokens.identify(token: token) else {
            return GRPCStatus(.unauthenticated, "the bearer token is not valid")
        }
        guard caller.role == AccessRole.admin.rawValue || caller.role == required.rawValue else {
            return GRPCStatus(
                .permissionDenied, "a \(caller.role) token may not call \(context.method.service): it needs a \(required.rawValue) token")
        }
        context.caller = caller
        return nil
    }

    /// The token of an `authorization: Bearer <token>` header (the scheme in any case).
    static func bearerToken(in metadata: Metadata) -> Substring? {
        guard let value = metadata["authorization"] else { return nil }
        let scheme = value.prefix { $0 != " " }
        guard scheme.lowercased() == "bearer" else { return nil }
        let token = value.dropFirst(scheme.count).drop { $0 == " " }
        return token.isEmpty ? nil : token
    }
}
