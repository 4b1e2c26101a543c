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
