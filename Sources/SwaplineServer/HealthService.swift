import RPCCore
import Synchronization
import SwaplineMessages

/// grpc.health.v1.Health: SERVING for the server as a whole ("") and each of its services
/// until shutdown begins, then NOT_SERVING, so load balancers drain the instance first.
/// Check also answers NOT_SERVING while the queue backend cannot reach its storage.
final class HealthService: Sendable {
    static let name = "grpc.health.v1.Health"

    private struct State {
        var isServing = true
        var watchers: [Int: (String, ServerCall)] = [:]
        var nextWatcher = 0
    }

    private let services: Set<String>
    private let state = Mutex(State())
    private let isStoreReachable: @Sendable () -> Bool

    init(services: Set<String>, isStoreReachable: @escaping @Sendable () -> Bool = { true }) {
        self.services = services.union(["", Self.name])
        self.isStoreReachable = isStoreReachable
    }

    func register(in router: inout RPCRouter) {
        router.register(service: Self.name, method: "Check", request: Grpc_Health_V1_HealthCheckRequest.self) { [self] request, call in
            guard services.contains(request.service) else {
                return call.finish(GRPCStatus(.notFound, "unknown service '\(request.service)'"))
            }
            call.reply(Grpc_Health_V1_HealthCheckResponse(status: currentStatus(request.service)))
        }
        router.register(service: Self.name, method: "Watch", request: Grpc_Health_V1_HealthCheckRequest.self) { [self] request, call in
            let (id, serving) = state.withLock { state -> (Int, Bool) in
                state.nextWatcher += 1
                state.watchers[state.nextWatcher] = (request.service, call)
                return (state.nextWatcher, state.isServing)
            }
            call.onCancel { [self] _ in state.withLock { _ = $0.watchers.removeValue(forKey: id) } }
            call.send(message: Grpc_Health_V1_HealthCheckResponse(status: status(request.service, serving: serving)))
        }
    }

    /// Reports NOT_SERVING from now on and tells every watcher.
    func markNotServing() {
        let watchers = state.withLock { state -> [(String, ServerCall)] in
            state.isServing = false
            return Array(state.watchers.values)
        }
        for (service, call) in watchers {
            call.send(message: Grpc_Health_V1_HealthCheckResponse(status: status(service, serving: false)))
        }
    }

    private func currentStatus(_ service: String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        status(service, serving: state.withLock { $0.isServing } && isStoreReachable())
    }

    private func status(_ service: String, serving: Bool) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        guard services.contains(service) else { return .serviceUnknown }
        return serving ? .serving : .notServing
    }
}
