import Testing
@testable import RPCCore

@Suite struct RPCRouterTests {
    private func router() -> RPCRouter {
        var router = RPCRouter()
        router.register(service: "pkg.Svc", method: "Get", handler: .singleRequest { _, _ in })
        return router
    }

    @Test func routesKnownMethods() {
        guard case .success = router().route("/pkg.Svc/Get") else {
            Issue.record("expected a route")
            return
        }
    }

    @Test func tellsUnknownServiceFromUnknownMethod() {
        guard case .failure(let method) = router().route("/pkg.Svc/Put"),
            case .failure(let service) = router().route("/pkg.Other/Get"),
            case .failure(let malformed) = router().route("nonsense")
        else {
            Issue.record("expected failures")
            return
        }
        #expect(method.code == .unimplemented && method.message.contains("'Put'"))
        #expect(service.code == .unimplemented && service.message.contains("unknown service 'pkg.Other'"))
        #expect(malformed.code == .unimplemented)
    }
}
