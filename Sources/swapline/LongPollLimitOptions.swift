import ArgumentParser
import SwaplineServer

/// `serve`'s caps on calls that wait on the server (docs/security.md, "Message contents and
/// long polls").
struct LongPollLimitOptions: ParsableArguments {
    @Option(help: "Open FetchTask calls (long polls) one HTTP/2 connection may have; more are refused RESOURCE_EXHAUSTED (REST: 429). A worker polls once per slot over one connection: keep this at least its --concurrency (it is raised to serve's own --workers).")
    var maxParkedFetchesPerConnection = LongPollLimits().maxParkedFetchesPerConnection

    @Option(help: "Open FetchTask calls on the whole server; more are refused RESOURCE_EXHAUSTED (REST: 429).")
    var maxParkedFetches = LongPollLimits().maxParkedFetches

    @Option(help: "Open WatchTask streams (REST: /events) one HTTP/2 connection may have; more are refused RESOURCE_EXHAUSTED (REST: 429).")
    var maxWatchesPerConnection = LongPollLimits().maxWatchesPerConnection

    @Option(help: "Open WatchTask streams on the whole server; more are refused RESOURCE_EXHAUSTED (REST: 429).")
    var maxWatches = LongPollLimits().maxWatches

    /// Every cap is at least 1 and at most a million (far past what memory allows anyway).
    static let largest = 1_000_000

    func validate() throws {
        try FlagRange.check(maxParkedFetchesPerConnection, "--max-parked-fetches-per-connection", in: 1...Self.largest)
        try FlagRange.check(maxParkedFetches, "--max-parked-fetches", in: 1...Self.largest)
        try FlagRange.check(maxWatchesPerConnection, "--max-watches-per-connection", in: 1...Self.largest)
        try FlagRange.check(maxWatches, "--max-watches", in: 1...Self.largest)
    }

    /// The limits, with the per-connection fetch cap raised to `inProcessWorkers` when that is
    /// larger: serve's own workers poll once per slot over one connection and must never be
    /// refused.
    func limits(inProcessWorkers: Int) -> LongPollLimits {
        var limits = LongPollLimits()
        limits.maxParkedFetchesPerConnection = max(maxParkedFetchesPerConnection, inProcessWorkers)
        limits.maxParkedFetches = maxParkedFetches
        limits.maxWatchesPerConnection = maxWatchesPerConnection
        limits.maxWatches = maxWatches
        return limits
    }
}
