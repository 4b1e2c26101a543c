import Foundation
import NIOCore
import NIOEmbedded
import RPCCore
import SwaplineCore
import SwaplineMessages
import SwaplineTestKit
import Synchronization
import Testing
@testable import SwaplineServer

@Suite struct DashboardAssetTests {
    /// The repository's ui/ directory, next to Sources and Tests.
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("ui")

    @Test func embedsEveryFileOfUIByteForByte() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path).sorted()
        #expect(DashboardAsset.all.map(\.name).sorted() == names)
        for asset in DashboardAsset.all {
            let file = try Data(contentsOf: Self.directory.appendingPathComponent(asset.name))
            #expect(Array(asset.body.readableBytesView) == Array(file), "\(asset.name)")
        }
    }

    @Test func namesContentTypesAndDistinctQuotedETags() throws {
        let types = Dictionary(uniqueKeysWithValues: DashboardAsset.all.map { ($0.name, $0.contentType) })
        #expect(types["index.html"] == "text/html; charset=utf-8")
        #expect(types["app.js"] == "text/javascript; charset=utf-8")
        #expect(types["app.css"] == "text/css; charset=utf-8")
        let etags = DashboardAsset.all.map(\.etag)
        #expect(Set(etags).count == etags.count)
        #expect(etags.allSatisfy { $0.count == 18 && $0.hasPrefix("\"") && $0.hasSuffix("\"") })
    }

    @Test func thePageLoadsItsScriptAndStyleFromFilesOnly() {
        let page = String(buffer: DashboardAsset.page.body)
        #expect(page.contains(#"<script src="/ui/app.js" defer></script>"#))
        #expect(page.contains(#"<link rel="stylesheet" href="/ui/app.css">"#))
        // The CSP forbids inline code: no other <script>, no style attribute or element, no on… handler.
        #expect(page.components(separatedBy: "<script").count == 2)
        #expect(!page.contains("style=") && !page.contains("<style") && !page.contains(" onclick="))
    }

    @Test(arguments: [
        ("/ui", "index.html"), ("/ui/", "index.html"), ("/ui/task/task_01", "index.html"), ("/ui/task/task_01/", "index.html"),
        ("/ui/index.html", "index.html"), ("/ui/app.js", "app.js"), ("/ui/app.css", "app.css"),
    ])
    func routesPathsToFiles(path: String, name: String) {
        #expect(RESTRoute.match(method: "GET", path: Substring(path)) == .success(.dashboard(DashboardAsset.all.first { $0.name == name }!)))
    }

    @Test(arguments: ["/ui/nope.js", "/ui/task/", "/ui/task", "/ui/task/a/b", "/ui/a/app.js", "/ui//", "/ui/..%2Fapp.js"])
    func refusesOtherPaths(path: String) {
        #expect(RESTRoute.match(method: "GET", path: Substring(path)) == .failure(.notFound))
    }

    @Test func onlyGETIsAnswered() {
        #expect(RESTRoute.match(method: "POST", path: "/ui/") == .failure(.methodNotAllowed(allowed: ["GET"])))
        #expect(RESTRoute.match(method: "GET", path: "/api/face-swap/stats/events") == .success(.queueStatsEvents))
        #expect(RESTRoute.match(method: "POST", path: "/api/face-swap/stats/events") == .failure(.methodNotAllowed(allowed: ["GET"])))
    }

    @Test func ifNoneMatchComparesWeaklyAndTakesLists() {
        let asset = DashboardAsset.page
        #expect(asset.isMatched(byIfNoneMatch: asset.etag))
        #expect(asset.isMatched(byIfNoneMatch: "\"x\", W/\(asset.etag)"))
        #expect(asset.isMatched(byIfNoneMatch: "*"))
        #expect(!asset.isMatched(byIfNoneMatch: "\"0000000000000000\""))
        #expect(!asset.isMatched(byIfNoneMatch: ""))
    }
}

/// `/ui` and `/api/face-swap/stats/events` through the REST handler, with a recording transport.
@Suite struct DashboardExchangeTests {
    let loop = EmbeddedEventLoop()
    let scheduler = TaskScheduler(configuration: SchedulerConfiguration(), queue: InMemoryTaskQueue(rules: TaskRules()))
    let watches: LongPollGate
    let feed: QueueStatsFeed
    let factory: RESTHandlerFactory

    init() {
        var limits = LongPollLimits()
        limits.maxWatches = 2
        watches = LongPollGate.watches(limits)
        var router = RPCRouter()
        // Figures that say how often they were read; the real GetQueueStats has tests of its own.
        let reads = ReadCounter()
        router.register(Swapline_V1_TaskService.getQueueStats) { _, call in
            reads.count += 1
            call.reply(Swapline_V1_QueueStats(counts: [.init(workflow: "face_swap", status: .pending, count: Int64(reads.count))]))
        }
        feed = QueueStatsFeed(scheduler: scheduler, watches: watches, minimumInterval: .seconds(1), heartbeatInterval: .seconds(15))
        factory = RESTHandlerFactory(router: router, queueStats: feed)
    }

    private func start(_ path: String, headers: [HeaderField] = []) -> (RecordingStreamWriter, any HTTPStreamHandler) {
        let writer = RecordingStreamWriter(loop: loop)
        let handler = factory.makeHandler(writer: writer)
        handler.receiveHead([HeaderField(":method", "GET"), HeaderField(":path", path)] + headers, endStream: true)
        loop.run()
        return (writer, handler)
    }

    private func head(_ writer: RecordingStreamWriter) -> (Int, [String: String])? {
        guard case .head(let status, let fields, _)? = writer.events.first else { return nil }
        return (status, Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }))
    }

    private func bodies(_ writer: RecordingStreamWriter) -> [String] {
        writer.events.compactMap { if case .body(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { nil } }
    }

    private func createTask() {
        let params = FaceSwapParameters(sourceURL: "https://example.com/a.jpg", targetURL: "https://example.com/b.jpg", resolution: "", model: "")
        scheduler.createTask(CreateTaskCommand(params: params)) { _ in }
    }

    @Test func servesThePageWithSecurityHeadersAndRevalidates() throws {
        let (writer, _) = start("/ui/task/task_01")
        let (status, headers) = try #require(head(writer))
        #expect(status == 200)
        #expect(headers["content-type"] == "text/html; charset=utf-8")
        #expect(headers["content-security-policy"]?.hasPrefix("default-src 'self';") == true)
        #expect(headers["x-content-type-options"] == "nosniff" && headers["x-frame-options"] == "DENY")
        #expect(headers["cache-control"] == "no-cache" && headers["etag"] == DashboardAsset.page.etag)
        #expect(bodies(writer).joined() == String(buffer: DashboardAsset.page.body))

        let (again, _) = start("/ui/", headers: [HeaderField("if-none-match", DashboardAsset.page.etag)])
        let (notModified, revalidated) = try #require(head(again))
        #expect(notModified == 304 && again.events.count == 1 && revalidated["etag"] == DashboardAsset.page.etag)
        #expect(revalidated["content-security-policy"] == headers["content-security-policy"])
        let (stale, _) = start("/ui/", headers: [HeaderField("if-none-match", "\"0000000000000000\"")])
        #expect(head(stale)?.0 == 200)
    }

    @Test func streamsFiguresAtOnceThenCoalescedChanges() throws {
        let (writer, handler) = start("/api/face-swap/stats/events")
        let (status, headers) = try #require(head(writer))
        #expect(status == 200 && headers["content-type"] == "text/event-stream")
        #expect(bodies(writer) == [#"data: {"counts":[{"workflow":"face_swap","status":"PENDING","count":1}],"oldest_pending_age_ms":0,"waiting_consumers":0,"active_leases":0,"finished_last_minute":0,"failed_last_minute":0,"failure_share_last_minute":0.0,"generated_at_ms":0}"# + "\n\n"])
        #expect(watches.openCount == 1)

        // Three changes within the minimum interval make one more event, when it has passed.
        createTask()
        createTask()
        createTask()
        loop.run()
        #expect(bodies(writer).count == 1)
        loop.advanceTime(by: .seconds(1))
        #expect(bodies(writer).count == 2)
        loop.advanceTime(by: .seconds(5))
        #expect(bodies(writer).count == 2)

        // The heartbeat: a comment, and the figures again.
        loop.advanceTime(by: .seconds(10))
        #expect(bodies(writer).suffix(2).first == ": heartbeat\n\n")
        #expect(bodies(writer).count == 4)

        handler.streamClosed(cleanly: false)
        #expect(watches.openCount == 0)
        createTask()
        loop.advanceTime(by: .seconds(60))
        #expect(bodies(writer).count == 4)
    }

    @Test func waitsForTheClientToTakeTheLastEvent() {
        let (writer, handler) = start("/api/face-swap/stats/events")
        writer.queuedBodyBytes = 100
        createTask()
        loop.advanceTime(by: .seconds(2))
        #expect(bodies(writer).count == 1)
        writer.queuedBodyBytes = 0
        handler.bodyDrained()
        #expect(bodies(writer).count == 2)
        handler.streamClosed(cleanly: false)
    }

    @Test func shutdownEndsTheStreamsAndRefusesNewOnes() throws {
        let (writer, handler) = start("/api/face-swap/stats/events")
        feed.openStreams.closeAll()
        loop.run()
        #expect(writer.events.last == .end(trailers: []))
        handler.streamClosed(cleanly: true)
        #expect(watches.openCount == 0)
        let (refused, _) = start("/api/face-swap/stats/events")
        #expect(head(refused)?.0 == 503 && bodies(refused).joined().contains("shutting down"))
        #expect(watches.openCount == 0)
    }

    @Test func countsAgainstTheWatchCaps() throws {
        let (_, first) = start("/api/face-swap/stats/events")
        let (_, second) = start("/api/face-swap/stats/events")
        let (refused, _) = start("/api/face-swap/stats/events")
        let (status, headers) = try #require(head(refused))
        #expect(status == 429 && headers["retry-after"] != nil)
        #expect(bodies(refused).joined().contains("WatchTask streams (stats event streams included)"))
        first.streamClosed(cleanly: false)
        second.streamClosed(cleanly: false)
        #expect(watches.openCount == 0)
    }
}

/// A counter the test's handler bumps (handlers are `@Sendable`).
private final class ReadCounter: Sendable {
    private let value = Mutex(0)
    var count: Int {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
