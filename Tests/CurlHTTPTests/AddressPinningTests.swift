import CurlHTTP
import Testing

/// Pinning is the last line of the URL policy: whatever curl parsed or resolved, a socket goes
/// only to a pinned address.
@Suite struct AddressPinningTests {
    private func withServer(_ body: (LoopbackHTTPServer, CurlHTTPClient) async throws -> Void) async throws {
        let server = try await LoopbackHTTPServer()
        let client = CurlHTTPClient()
        defer { client.shutdown() }
        do {
            try await body(server, client)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    @Test func aPinnedNameConnectsToItsPinnedAddressWithoutAnyLookup() async throws {
        try await withServer { server, client in
            // .invalid never resolves (RFC 6761): only the pin can make this connect.
            var request = HTTPRequest(url: "http://images.invalid:\(server.port)/hello")
            request.pinning = AddressPinning(host: "images.invalid", port: server.port, addresses: ["::1", "127.0.0.1"])
            let response = try await client.execute(request)
            #expect(response.status == 200)
            #expect(response.body == Array("hello".utf8))
        }
    }

    @Test func anAddressOutsideThePinIsRefusedBeforeItConnects() async throws {
        try await withServer { server, client in
            var request = HTTPRequest(url: server.url("/hello"))
            request.pinning = AddressPinning(host: "127.0.0.1", port: server.port, addresses: ["127.0.0.2"])
            await #expect(throws: HTTPClientError.refusedAddress("127.0.0.1 is not among the checked addresses")) {
                try await client.execute(request)
            }
        }
    }

    @Test func whatCurlResolvesOnItsOwnIsRefusedToo() async throws {
        try await withServer { server, client in
            // As if two parsers disagreed on the host: the pin names another one, so curl looks
            // "localhost" up itself, and every address it finds is refused at the socket.
            var request = HTTPRequest(url: "http://localhost:\(server.port)/hello")
            request.pinning = AddressPinning(host: "other.invalid", port: server.port, addresses: ["192.0.2.1"])
            await #expect {
                try await client.execute(request)
            } throws: { error in
                guard case .refusedAddress = error as? HTTPClientError else { return false }
                return true
            }
        }
    }

    @Test func unusablePinsFailTheRequest() async throws {
        try await withServer { server, client in
            var request = HTTPRequest(url: server.url("/hello"))
            request.pinning = AddressPinning(host: "127.0.0.1", port: server.port, addresses: ["not-an-address"])
            await #expect(throws: HTTPClientError.transport("invalid pinned addresses [\"not-an-address\"]")) {
                try await client.execute(request)
            }
            request.pinning = AddressPinning(host: "127.0.0.1", port: server.port, addresses: ["127.0.0.1"])
            request.proxy = .url("http://127.0.0.1:1")
            await #expect(throws: HTTPClientError.transport("a pinned request cannot go through a proxy")) {
                try await client.execute(request)
            }
        }
    }

    @Test func aConfiguredProxyIsUsedAndNoneMeansDirect() async throws {
        try await withServer { server, client in
            var request = HTTPRequest(url: server.url("/hello"), connectTimeout: .seconds(2))
            request.proxy = .url("http://127.0.0.1:1")
            await #expect(throws: HTTPClientError.self) { try await client.execute(request) }
            request.proxy = .none
            let response = try await client.execute(request)
            #expect(response.status == 200)
        }
    }
}
