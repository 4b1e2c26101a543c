import CurlHTTP
import Testing

/// Runs `body` against a fresh server and client, and stops both afterwards.
private func withServer(_ body: (LoopbackHTTPServer, CurlHTTPClient) async throws -> Void) async throws {
    let server = try await LoopbackHTTPServer()
    let client = CurlHTTPClient()
    do {
        try await body(server, client)
    } catch {
        client.shutdown()
        await server.stop()
        throw error
    }
    client.shutdown()
    await server.stop()
}

private func isTimeout(_ error: any Error) -> Bool {
    if case .timedOut = error as? HTTPClientError { return true }
    return false
}

@Suite struct CurlHTTPClientTests {
    @Test func getReturnsStatusHeadersAndBody() async throws {
        try await withServer { server, client in
            let response = try await client.execute(HTTPRequest(url: server.url("/hello")))
            #expect(response.status == 200)
            #expect(response.headers["x-test"] == "yes")
            #expect(response.body == Array("hello".utf8))
        }
    }

    @Test func postSendsBodyAndHeaders() async throws {
        try await withServer { server, client in
            var request = HTTPRequest(method: .post, url: server.url("/echo"), body: Array(#"{"a":1}"#.utf8))
            request.headers.add(name: "Content-Type", value: "application/json")
            let response = try await client.execute(request)
            #expect(response.body == Array(#"{"a":1}"#.utf8))
            #expect(response.headers["x-content-type"] == "application/json")
        }
    }

    @Test func notFoundIsAResponseNotAnError() async throws {
        try await withServer { server, client in
            let response = try await client.execute(HTTPRequest(url: server.url("/missing")))
            #expect(response.status == 404)
        }
    }

    @Test func sizeLimitStopsABodyWithoutContentLength() async throws {
        try await withServer { server, client in
            let request = HTTPRequest(url: server.url("/unsized"), maxResponseBytes: 10_000)
            await #expect(throws: HTTPClientError.responseTooLarge(limit: 10_000)) {
                try await client.execute(request)
            }
        }
    }

    @Test func totalTimeoutEndsASlowResponse() async throws {
        try await withServer { server, client in
            let request = HTTPRequest(url: server.url("/slow"), totalTimeout: .milliseconds(300))
            let started = ContinuousClock.now
            await #expect { try await client.execute(request) } throws: { isTimeout($0) }
            #expect(ContinuousClock.now - started < .seconds(3))
        }
    }

    @Test func refusedConnectionIsCouldNotConnect() async throws {
        // A port that was just listening and is now closed refuses connections.
        let stopped = try await LoopbackHTTPServer()
        let url = stopped.url("/")
        await stopped.stop()
        let client = CurlHTTPClient()
        defer { client.shutdown() }
        await #expect {
            try await client.execute(HTTPRequest(url: url))
        } throws: { error in
            if case .couldNotConnect = error as? HTTPClientError { return true }
            return false
        }
    }

    @Test func cancellingTheTaskRemovesTheTransfer() async throws {
        try await withServer { server, client in
            let url = server.url("/slow")
            let call = Task { try await client.execute(HTTPRequest(url: url)) }
            try await Task.sleep(for: .milliseconds(200))
            let started = ContinuousClock.now
            call.cancel()
            await #expect(throws: HTTPClientError.cancelled) { try await call.value }
            #expect(ContinuousClock.now - started < .seconds(2))
        }
    }

    @Test func concurrentRequestsAllComplete() async throws {
        try await withServer { server, client in
            let url = server.url("/hello")
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 { group.addTask { try await client.execute(HTTPRequest(url: url)).status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 20))
        }
    }

    @Test func shutdownFailsLaterRequests() async throws {
        try await withServer { server, client in
            client.shutdown()
            await #expect(throws: HTTPClientError.clientShutDown) {
                try await client.execute(HTTPRequest(url: server.url("/hello")))
            }
        }
    }
}
