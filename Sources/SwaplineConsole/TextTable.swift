public import SwaplineMessages

/// Columns aligned with spaces, for `list` and `stats`: a header row, then one row per entry.
public struct TextTable: Sendable {
    public var header: [String]
    /// Indices of the columns aligned right (numbers).
    public var rightAligned: Set<Int>
    public var rows: [[String]] = []

    public init(header: [String], rightAligned: Set<Int> = []) {
        self.header = header
        self.rightAligned = rightAligned
    }

    /// Each line ends with "\n"; columns are two spaces apart, without trailing spaces.
    public func rendered() -> String {
        let lines = [header] + rows
        let widths = header.indices.map { column in lines.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        var text = ""
        for line in lines {
            let cells = header.indices.map { column -> String in
                let cell = column < line.count ? line[column] : ""
                return ProgressLine.padded(cell, to: widths[column], left: rightAligned.contains(column))
            }
            var joined = cells.joined(separator: "  ")
            while joined.last == " " { joined.removeLast() }
            text += joined + "\n"
        }
        return text
    }
}

/// The table of `list`: one row per task.
public enum TaskTable {
    public static func rendered(_ tasks: [Swapline_V1_Task]) -> String {
        var table = TextTable(header: ["ID", "STATUS", "WORKFLOW", "PROGRESS", "ATTEMPT", "CREATED", "UPDATED"], rightAligned: [3, 4])
        table.rows = tasks.map { task in
            [
                task.taskID, LegacyJSON.statusName(task.status), task.workflow, "\(ProgressLine.percent(task.progress))%",
                String(task.attempt), time(task.createdAtMs), time(task.updatedAtMs),
            ]
        }
        return table.rendered()
    }

    /// `2026-12-04 23:50:01` (UTC).
    public static func time(_ milliseconds: Int64) -> String {
        String(LegacyJSON.isoTimestamp(milliseconds: milliseconds).map { $0 == "T" ? " " : $0 })
    }
}

/// What `stats` prints: a table of counts by workflow (rows) and state (columns), then the
/// queue's other figures, one per line.
public enum StatsTable {
    public static func rendered(_ stats: Swapline_V1_QueueStats) -> String {
        let states = LegacyJSON.statusNames
        var table = TextTable(header: ["WORKFLOW"] + states.map(\.1), rightAligned: Set(1...states.count))
        var workflows: [String] = []
        for count in stats.counts where !workflows.contains(count.workflow) { workflows.append(count.workflow) }
        table.rows = workflows.sorted().map { workflow in
            [workflow] + states.map { state in
                String(stats.counts.filter { $0.workflow == workflow && $0.status == state.0 }.reduce(0) { $0 + $1.count })
            }
        }
        let share = Int((stats.failureShareLastMinute.isFinite ? stats.failureShareLastMinute * 100 : 0).rounded())
        return table.rendered() + """
            oldest pending: \(stats.oldestPendingAgeMs > 0 ? ProgressLine.duration(milliseconds: stats.oldestPendingAgeMs) : "none")
            active leases: \(stats.activeLeases)
            waiting consumers: \(stats.waitingConsumers)
            last minute: \(stats.finishedLastMinute) finished, \(stats.failedLastMinute) failed (\(share)%)

            """
    }
}
