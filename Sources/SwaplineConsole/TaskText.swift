public import SwaplineMessages

/// A task for people, as `get`, `cancel` and the end of `watch` print it.
public enum TaskText {
    /// `task ID: STATE, attempt N` first, then one indented fact per line (each line ends
    /// with "\n"): what the task is, its error or its result's URLs, and its history when the
    /// server sent one (GetTask does).
    public static func described(_ task: Swapline_V1_Task) -> String {
        var text = "task \(task.taskID): \(LegacyJSON.statusName(task.status)), attempt \(task.attempt)\n"
        text += "  workflow: \(task.workflow), priority: \(task.priority), progress: \(ProgressLine.percent(task.progress))%\n"
        text += "  created: \(TaskTable.time(task.createdAtMs)), updated: \(TaskTable.time(task.updatedAtMs))\n"
        if let params = task.params {
            text += "  source: \(params.sourceURL)\n  target: \(params.targetURL)\n"
            text += "  model: \(params.model), resolution: \(params.resolution)\n"
            for (key, value) in params.options.sorted(by: { $0.key < $1.key }) { text += "  option \(key): \(value)\n" }
        }
        if !task.error.isEmpty { text += "  error: \(task.error)\n" }
        if let result = task.result { text += resultLines(result) }
        if !task.history.isEmpty {
            text += "  history:\n"
            for change in task.history {
                text += "    \(TaskTable.time(change.atMs))  " + ProgressLine.padded(LegacyJSON.statusName(change.status), to: 10)
                    + "  attempt \(change.attempt)" + (change.note.isEmpty ? "" : "  \(change.note)") + "\n"
            }
        }
        return text
    }

    /// The result's URLs: the primary output, then the others by kind.
    public static func resultLines(_ result: Swapline_V1_TaskResult) -> String {
        var text = "  output_url: \(result.outputURL)\n"
        for (kind, url) in result.outputs.sorted(by: { $0.key < $1.key }) { text += "  \(kind): \(url)\n" }
        text += "  processing_time: \(result.processingTime) s, job_id: \(result.jobID), storage: \(result.storageProvider)\n"
        return text
    }
}
