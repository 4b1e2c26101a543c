import ArgumentParser
import SwaplineCore
import SwaplineServer
import SwaplineWorker

/// How the server deletes stored result files (docs/storage.md, "Result lifetime" and
/// "Retention of result files"): after a lifetime of their own, and how failed deletions are
/// retried.
struct ResultFileOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Delete the stored result files of a COMPLETED task this long after it completed, keeping the task (e.g. 90s, 30m, 24h, 7d); off by default: files go with their task (--retention-hours).",
            valueName: "duration"))
    var resultLifetime: String?

    @Option(help: "Tries to delete a stored result file (each with the backend's own retries) before giving up with an error log.")
    var resultDeleteAttempts: Int32 = 8

    @Option(help: "Wait after a failed deletion of a result file, in ms; doubles per try, at most an hour.")
    var resultDeleteRetryBaseMs: Int64 = 60_000

    func validate() throws {
        if let resultLifetime, ResultLifetime(resultLifetime) == nil {
            throw ValidationError(
                "--result-lifetime must be a number and a unit (s, m, h or d) from 1s to 100 years, e.g. 24h or 7d; got '\(resultLifetime)'")
        }
        try FlagRange.check(resultDeleteAttempts, "--result-delete-attempts", in: 1...100)
        try FlagRange.checkMilliseconds(resultDeleteRetryBaseMs, "--result-delete-retry-base-ms")
    }

    /// The server's deletion of stored result files, through `cleaner`.
    func deletion(by cleaner: StoredResultCleaner) -> ResultFileDeletion {
        var deletion = ResultFileDeletion(delete: { await cleaner.delete($0) })
        deletion.lifetime = resultLifetime.flatMap(ResultLifetime.init)?.duration
        deletion.maxAttempts = resultDeleteAttempts
        deletion.retryBaseDelay = .milliseconds(resultDeleteRetryBaseMs)
        return deletion
    }
}

/// `--result-lifetime`: a number with a unit, `s`, `m`, `h` or `d`; from 1 s to 100 years.
struct ResultLifetime {
    let duration: Duration

    private static let unitSeconds: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]

    init?(_ argument: String) {
        guard let unit = argument.last, let seconds = Self.unitSeconds[unit], let count = Double(argument.dropLast()),
            count * seconds >= 1, count * seconds <= FlagRange.maxRetentionHours * 3_600
        else { return nil }
        duration = .milliseconds(Int64(count * seconds * 1000))
    }
}
