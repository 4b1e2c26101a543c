import Foundation
import SwaplinePostgres
import Testing

@Suite struct PostgresStoreLocationTests {
    @Test func aFullURLNamesEveryPart() throws {
        let location = try PostgresStoreLocation(url: "postgres://app:s%40cret@db.internal:6543/queue?sslmode=require")
        #expect(location == PostgresStoreLocation(host: "db.internal", port: 6543, username: "app", password: "s@cret", database: "queue", tlsMode: .require))
        #expect(location.description == "postgres://app@db.internal:6543/queue")
    }

    @Test func portDatabaseAndTLSHaveLibpqDefaults() throws {
        let location = try PostgresStoreLocation(url: "postgresql://app@[::1]")
        #expect(location == PostgresStoreLocation(host: "::1", port: 5432, username: "app", database: "app", tlsMode: .prefer))
        #expect(location.description == "postgres://app@[::1]:5432/app")
    }

    @Test func thePasswordFileWinsThenTheURLThenPGPASSWORD() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pgpass-\(UUID().uuidString)").path
        try "from-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = ["PGPASSWORD": "from-env"]
        #expect(try PostgresStoreLocation(url: "postgres://a:from-url@h/d", passwordFile: file, environment: environment).password == "from-file")
        #expect(try PostgresStoreLocation(url: "postgres://a:from-url@h/d", environment: environment).password == "from-url")
        #expect(try PostgresStoreLocation(url: "postgres://a@h/d", environment: environment).password == "from-env")
        #expect(try PostgresStoreLocation(url: "postgres://a@h/d").password == nil)
    }

    @Test(arguments: [
        ("mysql://a@h/d", "not a postgres:// URL"),
        ("postgres://h:5432/d", "must name a user"),
        ("postgres://a@:5432/d", "must name a host"),
        ("postgres://a@h:99999/d", "port must be a number"),
        ("postgres://a@h/d?sslmode=maybe", "sslmode must be one of"),
        ("postgres://a@h/d?timeout=3", "unknown URL parameter 'timeout'"),
        ("postgres://a:%zz@h/d", "bad %-escape"),
    ])
    func badURLsAreRefusedWithTheReason(_ url: String, _ reason: String) {
        #expect {
            _ = try PostgresStoreLocation(url: url)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test func aMissingPasswordFileIsNamed() {
        #expect {
            _ = try PostgresStoreLocation(url: "postgres://a@h/d", passwordFile: "/nonexistent/pgpass")
        } throws: { error in
            "\(error)".contains("/nonexistent/pgpass")
        }
    }

    @Test func errorsNeverShowThePassword() {
        #expect {
            _ = try PostgresStoreLocation(url: "postgres://a:hunter2@h/d?sslmode=x")
        } throws: { error in
            !"\(error)".contains("hunter2")
        }
        #expect {
            _ = try PostgresStoreLocation(url: "mysql://a:hunter2@h/d")
        } throws: { error in
            !"\(error)".contains("hunter2")
        }
    }
}
