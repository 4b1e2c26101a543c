import Foundation
import Logging
import PostgresNIO
import SwaplineCore
import SwaplinePostgres

/// Throwaway databases on the PostgreSQL cluster `SWAPLINE_TEST_POSTGRES_URL` names
/// (`tools/test.sh` starts one); tests that need one are skipped without it.
enum PostgresTestDatabase {
    static var url: String? {
        ProcessInfo.processInfo.environment["SWAPLINE_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static var isAvailable: Bool { url != nil }

    private static var server: PostgresStoreLocation {
        get throws {
            var location = try PostgresStoreLocation(url: url!, environment: ProcessInfo.processInfo.environment)
            location.tlsMode = .disable
            return location
        }
    }

    /// A new, empty database that `drop` removes.
    static func create() async throws -> PostgresStoreLocation {
        var location = try server
        location.database = "swapline_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let name = location.database
        try await withConnection(to: server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        return location
    }

    static func drop(_ location: PostgresStoreLocation) async {
        let name = location.database
        try? await withConnection(to: server) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }

    /// Runs `body` on a connection of its own to `location`.
    static func withConnection<T: Sendable>(
        to location: PostgresStoreLocation, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password,
            database: location.database, tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        do {
            let value = try await body(connection)
            try? await connection.close()
            return value
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// One integer a query answers.
    static func integer(_ sql: String, in location: PostgresStoreLocation) async throws -> Int64 {
        try await withConnection(to: location) { connection in
            var value: Int64 = 0
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(Int64.self) {
                value = row
            }
            return value
        }
    }

    static let logger = Logger(label: "swapline.tests.postgres")
}

extension PostgresTaskQueue {
    static func open(
        _ location: PostgresStoreLocation, rules: TaskRules = TaskRules(), clock: SteppedClock = SteppedClock()
    ) async throws -> PostgresTaskQueue {
        try await open(configuration: Configuration(location: location), rules: rules, clock: clock.clock, logger: PostgresTestDatabase.logger)
    }
}

/// A PostgreSQL queue on a database of its own; a restart opens a new queue on the same one.
struct PostgresQueueHarness: QueueHarness {
    let location: PostgresStoreLocation
    let rules: TaskRules
    let clock: SteppedClock
    let postgres: PostgresTaskQueue
    var queue: any TaskQueue { postgres }

    static func make(rules: TaskRules, clock: SteppedClock, location: PostgresStoreLocation? = nil) async throws -> PostgresQueueHarness {
        let database: PostgresStoreLocation
        if let location { database = location } else { database = try await PostgresTestDatabase.create() }
        let location = database
        let postgres = try await PostgresTaskQueue.open(location, rules: rules, clock: clock)
        return PostgresQueueHarness(location: location, rules: rules, clock: clock, postgres: postgres)
    }

    func reopened() async throws -> any QueueHarness {
        await postgres.close()
        return try await Self.make(rules: rules, clock: clock, location: location)
    }

    func tearDown() async {
        await postgres.close()
        await PostgresTestDatabase.drop(location)
    }
}
