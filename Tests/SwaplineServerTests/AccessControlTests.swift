import Logging
import RPCCore
import SwaplineMessages
import Testing
@testable import SwaplineServer

@Suite struct AccessTokensTests {
    @Test func readsTheEnvironmentAndFileFormats() throws {
        var tokens = AccessTokens()
        try tokens.add(environmentValue: " client:c-1 , consumer:w-1,,admin:a-1 ")
        try tokens.add(fileContents: "# tokens\n\nclient\tc-2\r\n  consumer   w-2  \n", path: "tokens")
        #expect(tokens.count == 5 && tokens.description == "5 tokens (client 2, consumer 2, admin 1)")
        #expect(tokens.identify(token: "c-2")?.role == "client" && tokens.identify(token: "a-1")?.role == "admin")
        #expect(tokens.identify(token: "c-") == nil && tokens.identify(token: "") == nil)
        #expect(tokens.identify(token: "c-1")?.subject == tokens.identify(token: "c-1")?.subject)
        #expect(tokens.identify(token: "c-1")?.subject != tokens.identify(token: "c-2")?.subject)
    }

    @Test func errorsNameThePlaceNeverTheToken() {
        let cases: [(String, String)] = [
            ("client:ok,root:secret-1", "SWAPLINE_AUTH_TOKENS, entry 2: unknown role 'root'"),
            ("client secret-2", "SWAPLINE_AUTH_TOKENS, entry 1: expected role:token"),
            ("client:secret-3,admin:secret-3", "SWAPLINE_AUTH_TOKENS, entry 2: the same token is configured twice"),
            ("client:", "SWAPLINE_AUTH_TOKENS, entry 1: a token must be"),
        ]
        for (value, expected) in cases {
            var tokens = AccessTokens()
            do {
                try tokens.add(environmentValue: value)
                Issue.record("\(value) was accepted")
            } catch {
                #expect(error.description.hasPrefix(expected))
                #expect(!error.description.contains("secret"))
            }
        }
        var tokens = AccessTokens()
        #expect(throws: AccessTokenError.self) { try tokens.add(fileContents: "client a b\n", path: "f") }
    }

    @Test func theSubjectIsNotTheToken() throws {
        var tokens = AccessTokens()
        try tokens.add(environmentValue: "client:super-secret")
        let subject = try #require(tokens.identify(token: "super-secret")?.subject)
        #expect(subject.hasPrefix("sha256:") && subject.count == 39 && !subject.contains("super-secret"))
    }
}

@Suite struct AccessControlTests {
    let control: AccessControl

    init() throws {
        var tokens = AccessTokens()
        try tokens.add(environmentValue: "client:c,consumer:w,admin:a")
        control = AccessControl(tokens: tokens)
    }

    private func check(_ method: MethodDescriptor, _ authorization: String?) -> (GRPCStatus.Code?, CallerIdentity?) {
        var metadata = Metadata()
        if let authorization { metadata.append("authorization", authorization) }
        var context = ServerContext(method: method, metadata: metadata, surface: .grpc)
        let refusal = control.intercept(&context)
        return (refusal?.code, context.caller)
    }

    @Test func eachServiceNeedsItsRoleAndAdminMayCallAll() {
        let create = Swapline_V1_TaskService.createTask.descriptor
        let fetch = Swapline_V1_ConsumerService.fetchTask.descriptor
        #expect(check(create, nil).0 == .unauthenticated)
        #expect(check(create, "Bearer nope").0 == .unauthenticated)
        #expect(check(create, "Basic c").0 == .unauthenticated)
        #expect(check(create, "Bearer ").0 == .unauthenticated)
        #expect(check(create, "Bearer w").0 == .permissionDenied)
        #expect(check(fetch, "Bearer c").0 == .permissionDenied)
        #expect(check(create, "bearer  c").0 == nil && check(create, "Bearer c").1?.role == "client")
        #expect(check(fetch, "Bearer w").0 == nil)
        #expect(check(create, "Bearer a").0 == nil && check(fetch, "Bearer a").0 == nil)
        #expect(check(Grpc_Testing_TestService.emptyCall.descriptor, "Bearer c").0 == .permissionDenied)
        #expect(check(Grpc_Testing_TestService.emptyCall.descriptor, "Bearer a").0 == nil)
    }

    @Test func healthStaysOpen() {
        #expect(check(Grpc_Health_V1_Health.check.descriptor, nil).0 == nil)
        #expect(check(Grpc_Health_V1_Health.watch.descriptor, "Bearer nope").0 == nil)
    }

    @Test func reflectionStaysOpen() {
        #expect(check(Grpc_Reflection_V1_ServerReflection.serverReflectionInfo, nil).0 == nil)
        #expect(check(Grpc_Reflection_V1alpha_ServerReflection.serverReflectionInfo, "Bearer nope").0 == nil)
    }

    @Test func loopbackHosts() {
        for host in ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"] {
            #expect(RunningServer.isLoopback(host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "127.0.0", "example.com", "127.0.0.1.nip.io"] {
            #expect(!RunningServer.isLoopback(host), "\(host)")
        }
    }
}

@Suite struct OpenServerTests {
    @Test func anOpenServerOffLoopbackRefusesToStart() async {
        var configuration = ServerConfiguration()
        configuration.host = "0.0.0.0"
        configuration.port = 0
        await #expect(throws: ServerStartError.self) {
            _ = try await RunningServer.start(configuration: configuration, logger: Logger(label: "test"))
        }
    }
}
