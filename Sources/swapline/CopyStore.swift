import ArgumentParser
import Foundation
import Logging
import SwaplineCore
import SwaplinePostgres
import SwaplineStore

/// Moves a queue from one store to another, e.g. from the embedded SQLite database to a
/// shared PostgreSQL one, with every task as it is (state, lease, attempts, version).
struct CopyStore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-store",
        abstract: "Copy every task from one store to another (e.g. SQLite to PostgreSQL).",
        discussion: """
            Stores are named as sqlite:DIR (the data directory of `serve --data DIR`) or \
            postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE. Stop the servers using either \
            store first: an SQLite directory in use is refused; nothing can tell that a \
            PostgreSQL database is in use. Tasks are copied in id order, in batches, each batch \
            one transaction. A task already in the target is kept unless the copied one is \
            newer (a higher version), so running the command again after an interruption \
            finishes the copy without duplicating anything. The PostgreSQL password comes from \
            --postgres-password-file, the URL, or PGPASSWORD.

            Example: swapline copy-store --from sqlite:./swapline-data --to postgres://swapline@db:5432/swapline
            """)

    @Option(help: "Store to copy from: sqlite:DIR or a postgres:// URL.")
    var from: String

    @Option(help: "Store to copy into: sqlite:DIR or a postgres:// URL (the schema is created when missing).")
    var to: String

    @Option(help: "File holding the PostgreSQL password (first line), for whichever store is PostgreSQL.")
    var postgresPasswordFile: String?

    @Option(help: "Tasks per batch (and per transaction in the target).")
    var batchSize = 500

    func validate() throws {
        try FlagRange.check(batchSize, "--batch-size", in: 1...100_000)
        guard from != to else { throw ValidationError("--from and --to name the same store") }
    }

    func run() async throws {
        bootstrapLogging(level: .warning)
        let logger = Logger(label: "swapline.copy-store")
        let source = try await open(from, logger: logger)
        let target: any TaskTransfer
        do {
            target = try await open(to, logger: logger)
        } catch {
            await source.close()
            throw error
        }
        do {
            var copied = 0
            var last = ""
            while true {
                let page = try await source.exportTasks(after: last, limit: batchSize)
                try await target.importTasks(page)
                copied += page.count
                guard page.count == batchSize, let end = page.last?.taskID else { break }
                last = end
                print("copied \(copied) tasks…")
            }
            print("copied \(copied) tasks from \(Self.describe(from)) to \(Self.describe(to))")
        } catch {
            await source.close()
            await target.close()
            throw error
        }
        await source.close()
        await target.close()
    }

    private func open(_ store: String, logger: Logger) async throws -> any TaskTransfer {
        // Copying applies no rules: the tasks keep the state, lease and attempts they have.
        let rules = TaskRules()
        if PostgresStoreLocation.isPostgresURL(store) {
            let location = try PostgresStoreLocation(
                url: store, passwordFile: postgresPasswordFile, environment: ProcessInfo.processInfo.environment)
            return try await PostgresTaskQueue.open(configuration: .init(location: location), rules: rules, logger: logger)
        }
        guard store.hasPrefix("sqlite:"), store.count > "sqlite:".count else {
            throw ValidationError("'\(Self.describe(store))' is neither sqlite:DIR nor a postgres:// URL")
        }
        let directory = String(store.dropFirst("sqlite:".count))
        return try SQLiteTaskQueue(configuration: .init(directory: directory), rules: rules)
    }

    /// The store's name without a password.
    private static func describe(_ store: String) -> String {
        guard PostgresStoreLocation.isPostgresURL(store), let location = try? PostgresStoreLocation(url: store) else { return store }
        return location.description
    }
}
