import Foundation
public import Logging
import SwaplineCore

/// How log lines are written (`--log-format`).
public enum LogFormat: String, CaseIterable, Sendable {
    /// For people: `<time> <level> <label>: key=value ... [<module>] <message>`.
    case text
    /// For log pipelines: one JSON object per line with `ts`, `level`, `label`, `message`,
    /// `source` and the metadata under `metadata`.
    case json
}

/// The log handler of `serve`, `worker` and `engine`: one line per event on stderr, in
/// `LogFormat`, with the logger's metadata and the event's (the event's win).
public struct SwaplineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let format: LogFormat
    private let write: @Sendable (String) -> Void
    private let flush: @Sendable () -> Void

    /// `write` gets each whole line, newline included; by default it goes to stderr through
    /// `BatchedLineWriter`, whole, so lines of concurrent loggers do not interleave. `flush`
    /// runs after every line at `error` or above, so such a line (and those before it) is out
    /// before whatever comes next, a crash included.
    public init(
        label: String, format: LogFormat, write: @escaping @Sendable (String) -> Void = SwaplineLogHandler.writeToStandardError,
        flush: @escaping @Sendable () -> Void = { BatchedLineWriter.standardError.flush() }
    ) {
        self.label = label
        self.format = format
        self.write = write
        self.flush = flush
    }

    public static let writeToStandardError: @Sendable (String) -> Void = { line in
        BatchedLineWriter.standardError.write(line)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // The event's own metadata as it is when there is nothing to merge it with (the
        // state-change lines on the request path): no copy.
        var merged = metadata.isEmpty ? event.metadata ?? [:] : metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if !metadata.isEmpty, let explicit = event.metadata { merged.merge(explicit) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        // UTC with milliseconds: 2026-12-04T23:26:24.123Z.
        let time = UTCTimestamp.format(millisecondsSince1970: Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)), withMilliseconds: true) + "Z"
        switch format {
        case .text: write(Self.textLine(time: time, level: event.level, label: label, metadata: merged, source: event.source, message: "\(event.message)"))
        case .json: write(Self.jsonLine(time: time, level: event.level, label: label, metadata: merged, source: event.source, message: "\(event.message)"))
        }
        if event.level >= .error { flush() }
    }

    static func textLine(time: String, level: Logger.Level, label: String, metadata: Logger.Metadata, source: String, message: String) -> String {
        var line = ""
        line.reserveCapacity(160)
        line += time
        line += " "
        line += level.rawValue
        line += " "
        line += label
        line += ":"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " "
            line += key
            line += "="
            line += value.description
        }
        line += " ["
        line += source
        line += "] "
        line += message
        line += "\n"
        return line
    }

    static func jsonLine(time: String, level: Logger.Level, label: String, metadata: Logger.Metadata, source: String, message: String) -> String {
        var line = "{\"ts\":"
        JSONText.appendString(time, to: &line)
        line += ",\"level\":"
        JSONText.appendString(level.rawValue, to: &line)
        line += ",\"label\":"
        JSONText.appendString(label, to: &line)
        line += ",\"message\":"
        JSONText.appendString(message, to: &line)
        line += ",\"source\":"
        JSONText.appendString(source, to: &line)
        line += ",\"metadata\":"
        JSONText.append(.dictionary(metadata), to: &line)
        return line + "}\n"
    }
}

/// Metadata values as JSON: strings (and string-convertibles) as strings, arrays and
/// dictionaries as arrays and objects (keys sorted, so equal metadata prints equally).
enum JSONText {
    static func append(_ value: Logger.MetadataValue, to line: inout String) {
        switch value {
        case .string(let string): appendString(string, to: &line)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(element, to: &line)
            }
            line += "]"
        case .dictionary(let dictionary):
            line += "{"
            for (index, (key, element)) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { line += "," }
                appendString(key, to: &line)
                line += ":"
                append(element, to: &line)
            }
            line += "}"
        }
    }

    /// `string` as a JSON string literal: quotes, backslashes and control characters escaped
    /// (RFC 8259), everything else as it is.
    static func appendString(_ string: String, to line: inout String) {
        line += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20:
                line += "\\u00"
                line += String(scalar.value, radix: 16).leftPadded(to: 2)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
