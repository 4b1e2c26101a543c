/// Reads sample values out of a Prometheus text exposition, for assertions.
struct ExpositionText {
    let text: String

    init(_ bytes: [UInt8]) {
        text = String(decoding: bytes, as: UTF8.self)
    }

    /// The value of the sample written exactly as `series` (name and label set), `nil` when
    /// there is no such line.
    func value(_ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// Lines of the metric family `name` that are samples (not `# HELP`/`# TYPE`).
    func samples(of name: String) -> [Substring] {
        text.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }
}
