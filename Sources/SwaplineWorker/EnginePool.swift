import Synchronization

/// The FaceFusion engines a worker may use, with what is known of each: healthy or not (from
/// the periodic `GET /health` and from failed calls) and how many jobs it is running. Work goes
/// only to healthy engines, least loaded first; an unhealthy engine gets nothing until a health
/// check finds it well again.
public final class EnginePool: Sendable {
    private struct Engine {
        let url: String
        var problem: String? = "not checked yet"
        var inFlight = 0
    }

    private let engines: Mutex<[Engine]>
    private let checkHealth: @Sendable (String) async -> String?

    /// `checkHealth` answers nil for a healthy engine, else the problem.
    public init(urls: [String], checkHealth: @escaping @Sendable (String) async -> String?) {
        engines = Mutex(urls.map { Engine(url: $0.hasSuffix("/") ? String($0.dropLast()) : $0) })
        self.checkHealth = checkHealth
    }

    public var hasHealthyEngine: Bool { engines.withLock { $0.contains { $0.problem == nil } } }

    /// Every engine's URL, in the order given.
    public var urls: [String] { engines.withLock { $0.map(\.url) } }

    /// The engines healthy now (metrics).
    public var healthyURLs: Set<String> { engines.withLock { Set($0.filter { $0.problem == nil }.map(\.url)) } }

    /// Checks every engine at once and records the answers.
    public func refreshHealth() async {
        let urls = engines.withLock { $0.map(\.url) }
        let checkHealth = self.checkHealth
        let results = await withTaskGroup(of: (String, String?).self) { group in
            for url in urls { group.addTask { (url, await checkHealth(url)) } }
            return await group.reduce(into: [String: String?]()) { $0[$1.0] = $1.1 }
        }
        engines.withLock { engines in
            for index in engines.indices {
                if let problem = results[engines[index].url] { engines[index].problem = problem }
            }
        }
    }

    /// Rechecks every `interval` until the calling task is cancelled.
    public func monitorHealth(every interval: Duration) async {
        while !Task.isCancelled {
            await refreshHealth()
            try? await Task.sleep(for: interval)
        }
    }

    /// Takes the healthy engine with the fewest jobs in flight (nil when none is healthy);
    /// give it back with `release`.
    public func acquire() -> String? {
        engines.withLock { engines in
            guard let index = engines.indices.filter({ engines[$0].problem == nil }).min(by: { engines[$0].inFlight < engines[$1].inFlight })
            else { return nil }
            engines[index].inFlight += 1
            return engines[index].url
        }
    }

    public func release(_ url: String) {
        engines.withLock { engines in
            if let index = engines.firstIndex(where: { $0.url == url }) { engines[index].inFlight -= 1 }
        }
    }

    /// Takes an engine out of rotation until the next health check finds it well.
    public func markUnhealthy(_ url: String, problem: String) {
        engines.withLock { engines in
            if let index = engines.firstIndex(where: { $0.url == url }) { engines[index].problem = problem }
        }
    }

    /// Checks `url` now (the check before work) and records the answer; nil when healthy.
    public func verify(_ url: String) async -> String? {
        let problem = await checkHealth(url)
        engines.withLock { engines in
            if let index = engines.firstIndex(where: { $0.url == url }) { engines[index].problem = problem }
        }
        return problem
    }
}
