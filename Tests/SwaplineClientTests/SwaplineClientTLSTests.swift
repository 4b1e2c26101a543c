import CurlHTTP
import H2Transport
import Logging
import SwaplineClient
import SwaplineMessages
import SwaplineServer
import SwaplineTestKit
import Testing

/// The client against a real server on a TLS loopback port (swift-nio-ssl, ALPN h2): an
/// `https://` server is verified against `caFile`, or against the system's trust store, which
/// does not know the test CA.
@Suite struct SwaplineClientTLSTests {
    private let params = Swapline_V1_FaceSwapParams(sourceURL: "https://example.com/face.jpg", targetURL: "https://example.com/photo.jpg")

    /// Runs `body` with a TLS server presenting a certificate for `subjectAlternativeNames`.
    private func withTLSServer(
        subjectAlternativeNames: String = "IP:127.0.0.1,DNS:localhost",
        _ body: (RunningServer, TestCertificates, TLSCredentials) async throws -> Void
    ) async throws {
        let certificates = try TestCertificates()
        defer { certificates.remove() }
        let pair = try certificates.serverCertificate(named: "server", subjectAlternativeNames: subjectAlternativeNames)
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.eventLoopThreads = 1
        configuration.tls = try TLSCredentials(certificateFile: pair.certificate, privateKeyFile: pair.privateKey)
        let server = try await RunningServer.start(configuration: configuration, logger: Logger(label: "test"))
        do {
            try await body(server, certificates, configuration.tls!)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test func theCAFileVerifiesTheServerAndCallsShareTheConnection() async throws {
        try await withTLSServer { server, certificates, _ in
            let client = SwaplineClient(serverURL: "https://127.0.0.1:\(server.port)", caFile: certificates.authority.certificate)
            let created = try await client.createTask(Swapline_V1_CreateTaskRequest(params: params))
            #expect(created.sourceChannel == "https://127.0.0.1:\(server.port)")
            // Concurrent calls, unary and streaming, over HTTP/2 inside TLS.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask { _ = try await client.getTask(id: created.taskID) }
                }
                try await group.waitForAll()
            }
            var events = client.watchTask(id: created.taskID).makeAsyncIterator()
            #expect(try await events.next()?.task?.status == .pending)
            _ = try await client.cancelTask(id: created.taskID)
            var last: Swapline_V1_TaskStatus?
            while let event = try await events.next() { last = event.task?.status }
            #expect(last == .cancelled)
        }
    }

    @Test func aServerTheClientCannotVerifyIsUnavailable() async throws {
        try await withTLSServer { server, certificates, _ in
            // The system's trust store does not know the test CA.
            let untrusting = SwaplineClient(serverURL: "https://127.0.0.1:\(server.port)")
            await #expect {
                try await untrusting.getTask(id: "task_x")
            } throws: {
                let error = $0 as? SwaplineClientError
                return error?.code == .unavailable && error?.message.contains("certificate") == true
            }
            // The right CA and the right server, but a host name the certificate does not
            // carry: connecting elsewhere never skips the name check.
            let otherName = SwaplineClient(
                serverURL: "https://wrong.invalid:\(server.port)", caFile: certificates.authority.certificate,
                connectTo: "127.0.0.1:\(server.port)")
            await #expect {
                try await otherName.getTask(id: "task_x")
            } throws: {
                let error = $0 as? SwaplineClientError
                return error?.code == .unavailable && error?.message.contains("wrong.invalid") == true
            }
            // A CA file that is not there.
            let missing = SwaplineClient(
                serverURL: "https://127.0.0.1:\(server.port)", caFile: "\(certificates.directory)/missing.pem")
            await #expect {
                try await missing.getTask(id: "task_x")
            } throws: { ($0 as? SwaplineClientError)?.code == .unavailable }
        }
    }

    @Test func aCleartextClientCannotTalkToATLSPort() async throws {
        try await withTLSServer { server, _, _ in
            let cleartext = SwaplineClient(serverURL: "http://127.0.0.1:\(server.port)")
            await #expect {
                try await cleartext.getTask(id: "task_x")
            } throws: { ($0 as? SwaplineClientError)?.code == .unavailable }
        }
    }

    @Test func theLocalEndpointReachesAServerWhoseCertificateNamesOnlyADNSName() async throws {
        try await withTLSServer(subjectAlternativeNames: "DNS:swapline.invalid") { server, _, tls in
            let local = try LocalEndpoint(host: "127.0.0.1", port: server.port, tls: tls)
            #expect(local.url == "https://swapline.invalid:\(server.port)")
            #expect(local.connectTo == "127.0.0.1:\(server.port)")
            let client = SwaplineClient(serverURL: local.url, caFile: local.caFile, connectTo: local.connectTo)
            let created = try await client.createTask(Swapline_V1_CreateTaskRequest(params: params))
            #expect(try await client.getTask(id: created.taskID).taskID == created.taskID)
        }
    }

    @Test func theLocalEndpointTrustsTheServersOwnCertificateOnly() async throws {
        try await withTLSServer { server, _, tls in
            let local = try LocalEndpoint(host: "0.0.0.0", port: server.port, tls: tls)
            #expect(local == LocalEndpoint(url: "https://127.0.0.1:\(server.port)", caFile: tls.certificateFile))
            let client = SwaplineClient(serverURL: local.url, caFile: local.caFile, connectTo: local.connectTo)
            #expect(try await client.fetchTask(Swapline_V1_FetchTaskRequest(consumerID: "local", waitMs: 0)).task == nil)
        }
    }

    /// `HTTPRequest.caFile` on its own, as REST clients over TLS use it.
    @Test func plainHTTPSRequestsHonourTheCAFile() async throws {
        try await withTLSServer { server, certificates, _ in
            let http = CurlHTTPClient()
            defer { http.shutdown() }
            let url = "https://127.0.0.1:\(server.port)/health"
            let verified = try await http.execute(HTTPRequest(url: url, caFile: certificates.authority.certificate))
            #expect(verified.status == 200)
            #expect(String(decoding: verified.body, as: UTF8.self).contains("\"status\":\"ok\""))
            await #expect {
                try await http.execute(HTTPRequest(url: url))
            } throws: {
                guard case .couldNotConnect(let detail) = $0 as? HTTPClientError else { return false }
                return detail.hasPrefix("TLS: ")
            }
        }
    }
}
