import RPCCore
import Synchronization

/// How many calls that wait on the server may be open at once: parked FetchTask long polls
/// and open WatchTask streams, per HTTP/2 connection and in total (`--max-parked-fetches`
/// and the like; docs/security.md). Each such call holds its request, a scheduler entry and
/// a timer for up to a minute, or a watch for as long as the client likes.
public struct LongPollLimits: Sendable, Equatable {
    public var maxParkedFetchesPerConnection = 128
    public var maxParkedFetches = 4096
    public var maxWatchesPerConnection = 128
    public var maxWatches = 4096

    public init() {}
}

/// Counts the open calls of one kind (parked fetches, or watches) per connection and in
/// total, and admits a new one only below both limits.
final class LongPollGate: Sendable {
    private struct Counts {
        var total = 0
        var perConnection: [ConnectionID: Int] = [:]
    }

    /// "parked FetchTask long polls" or "open WatchTask streams", for the refusal message.
    private let what: String
    private let perConnectionLimit: Int
    private let totalLimit: Int
    private let counts = Mutex(Counts())

    init(what: String, perConnection: Int, total: Int) {
        self.what = what
        perConnectionLimit = perConnection
        totalLimit = total
    }

    /// The gate of open watches: WatchTask streams and the dashboard's stats event streams.
    static func watches(_ limits: LongPollLimits) -> LongPollGate {
        LongPollGate(
            what: "WatchTask streams (stats event streams included)", perConnection: limits.maxWatchesPerConnection,
            total: limits.maxWatches)
    }

    /// Admits the call and returns the permit that must be released when it ends (released
    /// when the call is cancelled, too); or the RESOURCE_EXHAUSTED status that refuses it.
    func admit(_ call: ServerCall) -> Result<LongPollPermit, GRPCStatus> {
        let admitted = admit(connection: call.context.connection)
        if case .success(let permit) = admitted { call.onCancel { _ in permit.release() } }
        return admitted
    }

    /// Admits a call of another surface (the REST stats stream) on `connection` (`nil` when
    /// it cannot carry several calls, as HTTP/1.1); its owner releases the permit.
    func admit(connection: ConnectionID?) -> Result<LongPollPermit, GRPCStatus> {
        let refusal: String? = counts.withLock { counts in
            guard counts.total < totalLimit else {
                return "the server has \(totalLimit) \(what) open, its limit; try again later"
            }
            if let connection {
                let open = counts.perConnection[connection, default: 0]
                guard open < perConnectionLimit else {
                    return "this connection has \(perConnectionLimit) \(what) open, the limit per connection; try again later or on another connection"
                }
                counts.perConnection[connection] = open + 1
            }
            counts.total += 1
            return nil
        }
        if let refusal { return .failure(GRPCStatus(.resourceExhausted, refusal)) }
        return .success(LongPollPermit { [self] in release(connection) })
    }

    /// Calls open now (metrics, tests).
    var openCount: Int { counts.withLock { $0.total } }

    private func release(_ connection: ConnectionID?) {
        counts.withLock { counts in
            counts.total -= 1
            guard let connection, let open = counts.perConnection[connection] else { return }
            counts.perConnection[connection] = open > 1 ? open - 1 : nil
        }
    }
}

/// One admitted call's place under a `LongPollGate`; `release` gives it back (once, however
/// many of the call's ending paths call it).
final class LongPollPermit: Sendable {
    private let once = OnceFlag()
    private let onRelease: @Sendable () -> Void

    init(onRelease: @escaping @Sendable () -> Void) {
        self.onRelease = onRelease
    }

    func release() {
        if once.claim() { onRelease() }
    }
}
