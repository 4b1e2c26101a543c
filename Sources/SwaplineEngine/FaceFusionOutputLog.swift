import Foundation

/// One progress reading of a FaceFusion run, from a tqdm bar it printed.
public struct FaceFusionProgress: Sendable, Equatable {
    /// The bar's label, e.g. `processing`.
    public var stage: String
    /// Completed share, 0 to 1.
    public var fraction: Double
}

/// Collects what FaceFusion prints (stdout and stderr together): the latest tqdm progress and
/// the last lines, for the error of a failed run.
///
/// tqdm redraws its bar with `\r` and ends it with `\n`, e.g.
/// `processing:  45%|████▌     | 45/100 [00:03<00:04, 12.31frame/s]`; both end a line here.
public struct FaceFusionOutputLog: Sendable {
    /// How much of the output is kept for the log tail.
    public let tailLimit: Int
    private var pending: [UInt8] = []
    private var tail: [UInt8] = []
    public private(set) var progress: FaceFusionProgress?

    public init(tailLimit: Int = 4096) {
        self.tailLimit = tailLimit
    }

    /// Feeds the next bytes of output; returns whether the progress changed.
    @discardableResult
    public mutating func append(_ bytes: some Sequence<UInt8>) -> Bool {
        let before = progress
        for byte in bytes {
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                finishLine(newline: byte == UInt8(ascii: "\n"))
            } else if pending.count < tailLimit {
                pending.append(byte)
            }
        }
        return progress != before
    }

    /// The last lines printed (a redrawn bar only in its latest state), at most `tailLimit` bytes.
    public var logTail: String {
        String(decoding: tail + pending, as: UTF8.self)
    }

    private mutating func finishLine(newline: Bool) {
        guard !pending.isEmpty else { return }
        let line = String(decoding: pending, as: UTF8.self)
        if let reading = Self.parseProgress(line) {
            progress = reading
            // A bar's intermediate redraws would crowd real messages out of the tail.
            if !newline {
                pending = []
                return
            }
        }
        tail += pending + [UInt8(ascii: "\n")]
        if tail.count > tailLimit { tail.removeFirst(tail.count - tailLimit) }
        pending = []
    }

    /// The reading of one tqdm line: `label: NN%|bar| done/total [...]`; `nil` for any other line.
    public static func parseProgress(_ line: String) -> FaceFusionProgress? {
        guard let match = line.firstMatch(of: /^\s*([^:|]*?):?\s*(\d{1,3})%\|[^|]*\|\s*(\d+)\/(\d+)/) else { return nil }
        let stage = String(match.output.1).trimmingCharacters(in: .whitespaces)
        let fraction: Double
        if let done = Double(match.output.3), let total = Double(match.output.4), total > 0 {
            fraction = done / total
        } else if let percent = Double(match.output.2) {
            fraction = percent / 100
        } else {
            return nil
        }
        return FaceFusionProgress(stage: stage, fraction: min(max(fraction, 0), 1))
    }
}
