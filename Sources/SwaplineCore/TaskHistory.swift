/// One change of a task's state, as `Task.history` shows it: the state entered, when, the
/// attempt after the change and what caused it.
public struct TaskTransition: Sendable, Hashable {
    public var state: TaskState
    public var atMs: Int64
    public var attempt: Int32
    /// For people: the consumer of a lease, "lease expired", a failure's error; may be empty.
    public var note: String

    public init(state: TaskState, atMs: Int64, attempt: Int32, note: String = "") {
        self.state = state
        self.atMs = atMs
        self.attempt = attempt
        self.note = note
    }
}

/// The bounds of a task's history and its text form in the SQL stores' `history` column.
public enum TaskHistory {
    /// Changes kept per task: the newest, the oldest are dropped. A task changes state a few
    /// times per attempt, so only a task requeued many times loses its beginning.
    public static let maxEntries = 64
    /// A note is cut to this many bytes (a FAILED task's error can be 16 KiB, and the task
    /// keeps the whole error in `error`).
    public static let maxNoteBytes = 512

    /// `history` with `transition` appended, keeping the newest `maxEntries`.
    static func appending(_ transition: TaskTransition, to history: [TaskTransition]) -> [TaskTransition] {
        var transition = transition
        if transition.note.utf8.count > maxNoteBytes { transition.note = truncated(transition.note) }
        var history = history
        if history.count >= maxEntries { history.removeFirst(history.count - maxEntries + 1) }
        history.append(transition)
        return history
    }

    /// The longest prefix of whole characters within `maxNoteBytes`, marked as cut.
    private static func truncated(_ note: String) -> String {
        let scalars = note.unicodeScalars
        var bytes = 0
        var end = scalars.startIndex
        while end < scalars.endIndex, bytes + UTF8.width(scalars[end]) <= maxNoteBytes {
            bytes += UTF8.width(scalars[end])
            end = scalars.index(after: end)
        }
        return String(scalars[..<end]) + "…"
    }

    /// One line per change, `STATE<TAB>at_ms<TAB>attempt<TAB>note`, the note with backslash,
    /// newline and tab escaped. Empty for no history.
    public static func text(_ history: [TaskTransition]) -> String {
        var text = ""
        for (index, entry) in history.enumerated() {
            if index > 0 { text += "\n" }
            text += "\(entry.state.rawValue)\t\(entry.atMs)\t\(entry.attempt)\t"
            for character in entry.note.unicodeScalars {
                switch character {
                case "\\": text += "\\\\"
                case "\n": text += "\\n"
                case "\t": text += "\\t"
                default: text.unicodeScalars.append(character)
                }
            }
        }
        return text
    }

    /// The history in `text` (see `text(_:)`); lines that do not parse are skipped.
    public static func parse(_ text: String) -> [TaskTransition] {
        guard !text.isEmpty else { return [] }
        return text.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let fields = line.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count == 4, let state = TaskState(rawValue: String(fields[0])), let atMs = Int64(fields[1]),
                let attempt = Int32(fields[2])
            else { return nil }
            return TaskTransition(state: state, atMs: atMs, attempt: attempt, note: unescaped(fields[3]))
        }
    }

    private static func unescaped(_ escaped: Substring) -> String {
        guard escaped.contains("\\") else { return String(escaped) }
        var note = ""
        var isEscaping = false
        for character in escaped.unicodeScalars {
            if isEscaping {
                switch character {
                case "n": note += "\n"
                case "t": note += "\t"
                default: note.unicodeScalars.append(character)
                }
                isEscaping = false
            } else if character == "\\" {
                isEscaping = true
            } else {
                note.unicodeScalars.append(character)
            }
        }
        return note
    }
}
