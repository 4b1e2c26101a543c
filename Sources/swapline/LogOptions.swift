import Foundation
import ArgumentParser
import Logging
import SwaplineLogging

extension LogFormat: ExpressibleByArgument {}

/// Where log lines go and what they look like: stderr, one line per event, for `serve`,
/// `worker` and `engine`.
struct LogOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log line format: text (for people, metadata as key=value) or json (one object per line: ts, level, label, message, source, metadata).")
    var logFormat: LogFormat = .text

    /// Makes every logger of the process write this way. Call once, first thing.
    func bootstrap() {
        bootstrapLogging(level: logLevel, format: logFormat)
    }
}

/// Log lines go to stderr at `level` in `format`; what is still queued is written when the
/// process exits.
func bootstrapLogging(level: Logger.Level, format: LogFormat = .text) {
    atexit { BatchedLineWriter.standardError.flush() }
    LoggingSystem.bootstrap { label in
        var handler = SwaplineLogHandler(label: label, format: format)
        handler.logLevel = level
        return handler
    }
}
