import CurlHTTP
import Foundation
import SwaplineCore
import SwaplineMessages
import SwaplineTestKit
import Synchronization
import Testing

@testable import SwaplineWorker

/// The entries of the URL table that denote this machine.
private let localCases = URLPolicyTable.shared.refused.filter(\.local)

/// A resolver that answers from a table and counts its lookups.
private final class TableResolver: HostResolver {
    let table: [String: [IPAddress]]
    let lookups = Mutex<[String]>([])

    init(_ table: [String: [String]]) {
        self.table = table.mapValues { $0.map { IPAddress(numeric: $0)! } }
    }

    func addresses(of host: String) async throws -> [IPAddress] {
        lookups.withLock { $0.append(host) }
        return table[host] ?? []
    }
}

/// Runs `body` with a fresh server and fetcher (policy built from the server's port).
private func withFetcher(
    routes: [String: ScriptedHTTPServer.Response] = ["/a.jpg": .init(body: Array("jpeg".utf8))],
    resolver: any HostResolver = SystemHostResolver(),
    policy: (Int) throws -> URLPolicy = { _ in URLPolicy() },
    configure: (inout ClientURLFetcher.Configuration) -> Void = { _ in },
    _ body: (ClientURLFetcher, ScriptedHTTPServer) async throws -> Void
) async throws {
    let server = try await ScriptedHTTPServer(routes: routes)
    let http = CurlHTTPClient()
    var configuration = ClientURLFetcher.Configuration()
    configuration.policy = try policy(server.port)
    configure(&configuration)
    let fetcher = ClientURLFetcher(http: http, configuration: configuration, resolver: resolver)
    do {
        try await body(fetcher, server)
    } catch {
        http.shutdown()
        await server.stop()
        throw error
    }
    http.shutdown()
    await server.stop()
}

private func fetchError(_ fetcher: ClientURLFetcher, _ url: String) async -> ClientURLError? {
    do {
        _ = try await fetcher.fetch(url)
        return nil
    } catch {
        return error
    }
}

@Suite struct ClientURLFetcherTests {
    /// The URL table over the real download path: every spelling of this machine is refused
    /// before a connection, although a server listens right there.
    @Test(arguments: localCases)
    func everyLocalSpellingIsRefusedBeforeConnecting(_ entry: URLPolicyTable.Refused) async throws {
        try await withFetcher { fetcher, server in
            let url = entry.url.replacingOccurrences(of: "{port}", with: String(server.port))
            let error = try #require(await fetchError(fetcher, url))
            #expect(error.reason == URLPolicy().check(url).failure?.reason)
            #expect(server.requests.isEmpty)
        }
    }

    /// The same spellings with private addresses allowed do arrive at this machine's server:
    /// the address the policy judged is the address curl connected to.
    /// (`localhost` itself: the system resolver knows it, not names under it.)
    @Test(arguments: localCases.filter { ["127.0.0.1", "::1"].contains($0.means) || $0.url.lowercased().contains("//localhost") })
    func allowedLocalSpellingsReachTheAddressTheyWereJudgedAs(_ entry: URLPolicyTable.Refused) async throws {
        try await withFetcher(policy: { _ in URLPolicy(allowsPrivateAddresses: true) }) { fetcher, server in
            guard entry.means != "::1" || server.hasIPv6 else { return }
            let url = entry.url.replacingOccurrences(of: "{port}", with: String(server.port))
            let checked = try URLPolicy(allowsPrivateAddresses: true).check(url).get()
            // Some spellings end their path early ("#@…"): a 404 from this server still arrived here.
            _ = try? await fetcher.fetch(url)
            #expect(server.requests.map(\.uri) == [checked.target])
            #expect(server.requests.map(\.host) == [checked.authority])
        }
    }

    @Test func aNameThatResolvesInwardIsRefusedAtConnectTime() async throws {
        let resolver = TableResolver(["images.example.com": ["127.0.0.1"], "meta.example.com": ["169.254.169.254"]])
        try await withFetcher(resolver: resolver) { fetcher, server in
            // CreateTask's check lets both through: they look public.
            #expect(URLPolicy().check("http://images.example.com:\(server.port)/a.jpg").failure == nil)
            let error = try #require(await fetchError(fetcher, "http://images.example.com:\(server.port)/a.jpg"))
            #expect(error.reason == "cannot be fetched: its host does not resolve to a public address")
            #expect(!error.reason.contains("127.0.0.1"))  // the client learns nothing of the inside
            #expect(error.detail.contains("127.0.0.1"))
            let metadata = try #require(await fetchError(fetcher, "http://meta.example.com/latest/meta-data/"))
            #expect(metadata.reason == error.reason)
            // An unknown name reads the same from outside.
            #expect(await fetchError(fetcher, "http://nowhere.example.com/")?.reason == error.reason)
            #expect(server.requests.isEmpty)
        }
    }

    @Test func oneInwardAddressRefusesTheName() async throws {
        let resolver = TableResolver(["mixed.test": ["127.0.0.1", "127.0.0.2"]])
        try await withFetcher(resolver: resolver, policy: { port in URLPolicy(allowedHosts: [try HostPattern("127.0.0.1:\(port)")]) }) {
            fetcher, server in
            #expect(await fetchError(fetcher, "http://mixed.test:\(server.port)/a.jpg") != nil)
            #expect(server.requests.isEmpty)
        }
    }

    /// A name the system cannot resolve is fetched from the address the injected resolver gave,
    /// looked up once: curl connects where the check looked, not where a later lookup points.
    @Test func theConnectionIsPinnedToTheCheckedAddress() async throws {
        let resolver = TableResolver(["files.test": ["127.0.0.1"]])
        try await withFetcher(resolver: resolver, policy: { port in URLPolicy(allowedHosts: [try HostPattern("127.0.0.1:\(port)")]) }) {
            fetcher, server in
            let file = try await fetcher.fetch("http://FILES.test.:\(server.port)/a.jpg#x")
            #expect(file.bytes == Array("jpeg".utf8))
            #expect(file.url.url == "http://files.test:\(server.port)/a.jpg")
            #expect(server.requests.map(\.host) == ["files.test:\(server.port)"])
            #expect(resolver.lookups.withLock { $0 } == ["files.test"])
        }
    }

    /// A redirect chain served here, allowed on its first hops (an allow-list entry for this
    /// server's exact port), refused at the hop that turns inward.
    @Test func redirectsAreCheckedAtEveryHop() async throws {
        let routes: [String: ScriptedHTTPServer.Response] = [
            "/start": .redirect(to: "/hop?n=1"),
            "/hop?n=1": .redirect(301, to: "next.jpg"),
            "/next.jpg": .redirect(307, to: "/a.jpg"),
            "/a.jpg": .init(body: Array("jpeg".utf8)),
            "/to-metadata": .redirect(to: "http://169.254.169.254/latest/meta-data/"),
            "/to-other-port": .redirect(to: "http://127.0.0.1:1/secret"),
            "/to-localhost": .redirect(308, to: "http://localhost/"),
            "/to-hex": .redirect(303, to: "http://0x7f.1/"),
            "/to-file": .redirect(to: "file:///etc/passwd"),
            "/loop": .redirect(to: "/loop"),
            "/nowhere": .init(status: 302),
        ]
        try await withFetcher(routes: routes, policy: { port in URLPolicy(allowedHosts: [try HostPattern("127.0.0.1:\(port)")]) }) {
            fetcher, server in
            let file = try await fetcher.fetch(server.url("/start"))
            #expect(file.bytes == Array("jpeg".utf8))
            #expect(file.url.target == "/a.jpg")
            #expect(server.requests.map(\.uri) == ["/start", "/hop?n=1", "/next.jpg", "/a.jpg"])

            for (path, refused) in [
                ("/to-metadata", "169.254.169.254 is link-local"), ("/to-other-port", "127.0.0.1 is loopback"),
                ("/to-localhost", "must not point to localhost"), ("/to-hex", "127.0.0.1 is loopback"),
                ("/to-file", "must be an absolute http:// or https:// URL"),
            ] {
                let before = server.requests.count
                let error = try #require(await fetchError(fetcher, server.url(path)))
                #expect(error.reason.hasPrefix("redirects to "), "\(path)")
                #expect(error.reason.contains(refused), "\(path): \(error.reason)")
                #expect(server.requests.count == before + 1, "\(path): only the first hop arrived")
            }
            let before = server.requests.count
            #expect(await fetchError(fetcher, server.url("/loop"))?.reason == "cannot be fetched: more than 5 redirects")
            #expect(server.requests.count == before + 6)
            #expect(await fetchError(fetcher, server.url("/nowhere"))?.reason == "cannot be fetched: a redirect without a Location")
        }
    }

    @Test func limitsAndFailuresAreReportedWithoutDetail() async throws {
        let routes: [String: ScriptedHTTPServer.Response] = [
            "/big": .init(body: Array(repeating: 7, count: 4096)),
            "/missing": .init(status: 404),
            "/dribble": .init(dribble: .milliseconds(300)),
        ]
        try await withFetcher(
            routes: routes, policy: { _ in URLPolicy(allowsPrivateAddresses: true) },
            configure: {
                $0.maxBytes = 1000
                $0.lowSpeedLimit = LowSpeedLimit(bytesPerSecond: 100, duration: .seconds(1))
            }
        ) { fetcher, server in
            #expect(await fetchError(fetcher, server.url("/big"))?.reason == "cannot be fetched: larger than 1000 bytes")
            #expect(await fetchError(fetcher, server.url("/missing"))?.reason == "cannot be fetched: HTTP 404")
            let started = ContinuousClock.now
            #expect(await fetchError(fetcher, server.url("/dribble"))?.reason == "cannot be fetched: timed out")
            #expect(started.duration(to: .now) < .seconds(10))
            let closed = try #require(await fetchError(fetcher, "http://127.0.0.1:1/a.jpg"))
            #expect(closed.reason == "cannot be fetched: could not connect or the connection failed")
        }
    }

    @Test func aConfiguredProxyCarriesTheFetch() async throws {
        // The proxy is this test server: it gets the absolute URL as its request target.
        try await withFetcher(routes: ["http://images.example.com/a.jpg": .init(body: Array("via proxy".utf8))]) { _, server in
            var configuration = ClientURLFetcher.Configuration()
            configuration.proxy = server.url("")
            let http = CurlHTTPClient()
            defer { http.shutdown() }
            // No lookup here: the proxy resolves (the table knows no name).
            let resolver = TableResolver([:])
            let fetcher = ClientURLFetcher(http: http, configuration: configuration, resolver: resolver)
            let file = try await fetcher.fetch("http://images.example.com/a.jpg")
            #expect(file.bytes == Array("via proxy".utf8))
            // What the URL shows to be inward is still refused before the proxy sees it.
            #expect(await fetchError(fetcher, "http://127.0.0.1/a.jpg") != nil)
            #expect(server.requests.count == 1)
            #expect(resolver.lookups.withLock { $0 }.isEmpty)
        }
    }
}

@Suite struct FaceSwapProcessorTests {
    /// A processor whose engine and inputs are served by `engine`, fetched under `policy`.
    private static func processor(engine: ScriptedHTTPServer, http: CurlHTTPClient, policy: URLPolicy, pool: EnginePool? = nil) async
        -> FaceSwapProcessor
    {
        var configuration = ClientURLFetcher.Configuration()
        configuration.policy = policy
        let engines = EnginePool(urls: [engine.url("")]) { _ in nil }
        await engines.refreshHealth()
        return FaceSwapProcessor(
            engines: pool ?? engines, faceFusion: FaceFusionClient(http: http),
            inputs: ClientURLFetcher(http: http, configuration: configuration), http: http,
            storage: ResultStorageChain([
                LocalResultStorage(directory: NSTemporaryDirectory() + "swapline-test-\(UUID().uuidString)", publicBaseURL: "http://h")
            ]),
            retry: RetryPolicy(maxAttempts: 1, baseDelay: .milliseconds(1)))
    }

    private static func task(_ server: ScriptedHTTPServer) -> Swapline_V1_Task {
        Swapline_V1_Task(
            taskID: "task_1",
            params: Swapline_V1_FaceSwapParams(sourceURL: server.url("/s.jpg"), targetURL: server.url("/t.jpg"), resolution: "512x512", model: "m"))
    }

    private static let inputs: [String: ScriptedHTTPServer.Response] = [
        "/health": .init(body: Array(#"{"status":"ok"}"#.utf8)),
        "/s.jpg": .init(headers: [("Content-Type", "image/jpeg")], body: [0xFF, 0xD8, 0xFF]),
        "/t.jpg": .init(headers: [("Content-Type", "image/jpeg")], body: [0xFF, 0xD8, 0x00]),
    ]

    private static func run(_ processor: FaceSwapProcessor, _ task: Swapline_V1_Task) async -> TaskFailure? {
        do {
            _ = try await processor.process(task, progress: ProgressReporter { _, _ in })
            return nil
        } catch {
            return error
        }
    }

    @Test func inputsUnderThePolicyFailTheInputStageBeforeAnyEngineWork() async throws {
        let server = try await ScriptedHTTPServer(routes: Self.inputs)
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let processor = await Self.processor(engine: server, http: http, policy: URLPolicy())
        let failure = try #require(await Self.run(processor, Self.task(server)))
        #expect(failure.stage == "input")
        #expect(failure.reason.hasPrefix("params.source_url must not point to a private or special-purpose address"))
        #expect(server.requests.isEmpty)
        await server.stop()
    }

    @Test func theEngineGetsTheFetchedFilesAndItsErrorTextStaysInTheLog() async throws {
        var routes = Self.inputs
        routes["/process"] = .init(status: 422, body: Array(#"{"status":"error","error":"could not load: connection refused 10.0.0.7:22"}"#.utf8))
        let server = try await ScriptedHTTPServer(routes: routes)
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let processor = await Self.processor(engine: server, http: http, policy: URLPolicy(allowsPrivateAddresses: true))
        let failure = try #require(await Self.run(processor, Self.task(server)))
        #expect(failure.description == "facefusion: engine rejected the job with HTTP 422")
        #expect(failure.detail?.contains("10.0.0.7:22") == true)
        let process = try #require(server.requests.first { $0.uri == "/process" })
        #expect(process.contentType.hasPrefix("multipart/form-data; boundary="))
        let body = String(decoding: process.body, as: UTF8.self)
        #expect(body.contains(#"name="source"; filename="source.jpg""#))
        #expect(!body.contains("/s.jpg") && !body.contains("/t.jpg"))  // files, not the client's URLs
        #expect(process.body.contains(0xD8))
        await server.stop()
    }

    @Test func outputsOutsideTheEnginesOwnHostAreNotDownloaded() async throws {
        var routes = Self.inputs
        let elsewhere = "http://127.0.0.2:9/outputs/x/result.jpg"
        routes["/process"] = .init(body: Array(#"{"status":"success","output_path":"\#(elsewhere)","job_id":"j"}"#.utf8))
        let server = try await ScriptedHTTPServer(routes: routes)
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let processor = await Self.processor(engine: server, http: http, policy: URLPolicy(allowsPrivateAddresses: true))
        let failure = try #require(await Self.run(processor, Self.task(server)))
        #expect(failure.description == "download: the engine named an output outside its own host")
        #expect(failure.detail?.contains(elsewhere) == true)
        await server.stop()
    }

    @Test func anEngineFailingTheCheckBeforeWorkFailsTheHealthStage() async throws {
        let server = try await ScriptedHTTPServer(routes: Self.inputs)
        let healthy = Mutex(true)
        let pool = EnginePool(urls: ["http://engine"]) { _ in healthy.withLock { $0 } ? nil : "HTTP 503" }
        await pool.refreshHealth()
        healthy.withLock { $0 = false }
        let http = CurlHTTPClient()
        defer { http.shutdown() }
        let processor = await Self.processor(engine: server, http: http, policy: URLPolicy(allowsPrivateAddresses: true), pool: pool)
        let failure = await Self.run(processor, Self.task(server))
        #expect(failure == TaskFailure(stage: "health", reason: "no healthy FaceFusion engine"))
        #expect(failure?.detail == "http://engine: HTTP 503")
        #expect(!pool.hasHealthyEngine)
        await server.stop()
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
