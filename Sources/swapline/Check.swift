import ArgumentParser
import SwaplineStore

/// The whole-file integrity check of an SQLite task database, kept out of `serve`'s start
/// because it reads every page: minutes for a large database.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the SQLite task database in --data for damage (PRAGMA integrity_check).",
        discussion: """
            Reads the whole file, so it takes time in proportion to the stored tasks; it is \
            safe to run while a server uses the directory. Prints 'ok' and exits 0 for a \
            healthy database; otherwise prints each problem found and exits 1.

            Example: swapline check --data ./swapline-data
            """)

    @Option(help: "Data directory holding the task database.")
    var data = "./swapline-data"

    func run() throws {
        let problems = try SQLiteTaskQueue.integrityProblems(directory: data)
        guard !problems.isEmpty else { return print("ok") }
        for problem in problems { print(problem) }
        throw ExitCode.failure
    }
}
