import RPCCore
import Synchronization
import SwaplineMessages

/// grpc.health.v1.Health: SERVING for the server as a whole ("") and each of its services
/// until shutdown begins, then NOT_SERVING, so load balancers drain the instance first.
/// It also answers NOT_SERVING while the queue backend cannot reach its storage (a shared
/// database that is down, an SQLite database whose writes fail); `refreshStoreReachability`
/// tells watchers when that changes.
final class HealthService: Sendable {
    static let name = Grpc_Health_V1_Health.name

    private struct State {
        var isShuttingDown = false
        /// What watchers were last told of the store.
        var wasStoreReachable = true
        var watchers: [Int: (String, ServerCall)] = [:]
        var nextWatcher = 0

        func isServing(storeReachable: Bool) -> Bool { !isShuttingDown && storeReachable }
    }

    private let services: Set<String>
    private let state = Mutex(State())
    private let isStoreReachable: @Sendable () -> Bool

    init(services: Set<String>, isStoreReachable: @escaping @Sendable () -> Bool = { true }) {
        self.services = services.union(["", Self.name])
        self.isStoreReachable = isStoreReachable
    }

    func register(in router: inout RPCRouter) {
        router.register(Grpc_Health_V1_Health.check) { [self] request, call in
            guard services.contains(request.service) else {
                return call.finish(GRPCStatus(.notFound, "unknown service '\(request.service)'"))
            }
            call.reply(Grpc_Health_V1_HealthCheckResponse(status: currentStatus(request.service)))
        }
        router.register(Grpc_Health_V1_Health.watch) { [self] request, call in
            let reachable = isStoreReachable()
            let (id, serving) = state.withLock { state -> (Int, Bool) in
                state.nextWatcher += 1
                state.watchers[state.nextWatcher] = (request.service, call)
                state.wasStoreReachable = reachable
                return (state.nextWatcher, state.isServing(storeReachable: reachable))
            }
            call.onCancel { [self] _ in state.withLock { _ = $0.watchers.removeValue(forKey: id) } }
            call.send(message: Grpc_Health_V1_HealthCheckResponse(status: status(request.service, serving: serving)))
        }
    }

    /// Reports NOT_SERVING from now on and tells every watcher.
    func markNotServing() {
        let watchers = state.withLock { state -> [(String, ServerCall)] in
            state.isShuttingDown = true
            return Array(state.watchers.values)
        }
        tell(watchers, serving: false)
    }

    /// Tells watchers when the store became reachable or unreachable since they last heard.
    func refreshStoreReachability() {
        let reachable = isStoreReachable()
        let (watchers, serving) = state.withLock { state -> ([(String, ServerCall)], Bool) in
            guard reachable != state.wasStoreReachable else { return ([], false) }
            state.wasStoreReachable = reachable
            return (Array(state.watchers.values), state.isServing(storeReachable: reachable))
        }
        tell(watchers, serving: serving)
    }

    private func tell(_ watchers: [(String, ServerCall)], serving: Bool) {
        for (service, call) in watchers {
            call.send(message: Grpc_Health_V1_HealthCheckResponse(status: status(service, serving: serving)))
        }
    }

    private func currentStatus(_ service: String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        let reachable = isStoreReachable()
        return status(service, serving: state.withLock { $0.isServing(storeReachable: reachable) })
    }

    private func status(_ service: String, serving: Bool) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus {
        guard services.contains(service) else { return .serviceUnknown }
        return serving ? .serving : .notServing
    }
}
