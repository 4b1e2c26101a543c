public import SwaplineMessages

/// The text `watch` shows for one state of a task: on a terminal, one line redrawn in place;
/// elsewhere, one plain line per event.
public enum ProgressLine {
    /// Characters between the brackets of the bar.
    public static let barWidth = 20

    /// `PROCESSING  [=========>          ]  45%  attempt 1  elapsed 0:12`: short enough for an
    /// 80-column terminal, since a line that wraps could no longer be redrawn in place.
    public static func bar(_ task: Swapline_V1_Task, elapsedMilliseconds: Int64) -> String {
        let percent = percent(task.progress)
        let filled = percent * barWidth / 100
        let body: String
        if filled >= barWidth {
            body = String(repeating: "=", count: barWidth)
        } else {
            body = String(repeating: "=", count: filled) + (filled > 0 ? ">" : " ")
                + String(repeating: " ", count: barWidth - filled - 1)
        }
        let status = LegacyJSON.statusName(task.status)
        return padded(status, to: 10) + "  [\(body)] " + padded(String(percent), to: 3, left: true)
            + "%  attempt \(task.attempt)  elapsed \(duration(milliseconds: elapsedMilliseconds))"
    }

    /// What a terminal gets to replace its current line with `line`: carriage return and
    /// erase-line first, then the new text in the same write, so the line never shows blank.
    public static func redraw(_ line: String) -> String {
        "\r\u{1B}[2K" + line
    }

    /// `task_… PROCESSING 45% attempt 1`: one event, for a pipe or a file.
    public static func plain(_ task: Swapline_V1_Task) -> String {
        "\(task.taskID) \(LegacyJSON.statusName(task.status)) \(percent(task.progress))% attempt \(task.attempt)"
    }

    /// How long the task has existed: until its last change once it is finished, until `now`
    /// while it runs (never negative, should the clocks of client and server disagree).
    public static func elapsedMilliseconds(_ task: Swapline_V1_Task, nowMilliseconds: Int64) -> Int64 {
        let end = isFinished(task.status) ? task.updatedAtMs : nowMilliseconds
        return max(0, end - task.createdAtMs)
    }

    public static func isFinished(_ status: Swapline_V1_TaskStatus) -> Bool {
        status == .completed || status == .failed || status == .cancelled
    }

    /// Progress 0...1 as a whole percentage; clamped, as `Int(_:)` traps on NaN or infinity.
    public static func percent(_ progress: Float) -> Int {
        progress.isFinite ? Int((min(max(progress, 0), 1) * 100).rounded()) : 0
    }

    /// `0:07`, `12:34`, `1:02:03`.
    public static func duration(milliseconds: Int64) -> String {
        let seconds = max(0, milliseconds) / 1000
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let hours = seconds / 3600
        return hours > 0 ? "\(hours):\(two(seconds / 60 % 60)):\(two(seconds % 60))" : "\(seconds / 60):\(two(seconds % 60))"
    }

    static func padded(_ text: String, to width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? padding + text : text + padding
    }
}
