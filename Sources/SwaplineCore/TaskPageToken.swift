/// ListTasks' page tokens: the last task's position and the fingerprint of the filters it
/// was issued for, as hex so that clients see one opaque word. A token is only accepted with
/// the filters it was issued for.
public enum TaskPageToken {
    public static func make(after cursor: TaskListCursor, filter: TaskListFilter) -> String {
        let plain = "1:\(String(filter.fingerprint, radix: 16)):\(cursor.createdAtMs):\(cursor.taskID)"
        var token = ""
        token.reserveCapacity(plain.utf8.count * 2)
        for byte in plain.utf8 {
            token.append(hexDigits[Int(byte >> 4)])
            token.append(hexDigits[Int(byte & 0xF)])
        }
        return token
    }

    /// The cursor in `token`; INVALID_ARGUMENT for a token that is malformed or was issued for
    /// other filters.
    public static func cursor(_ token: String, filter: TaskListFilter) -> Result<TaskListCursor, TaskError> {
        let malformed = TaskError(.invalidArgument, "page_token is not a token this server issued (pass next_page_token unchanged)")
        guard let plain = decodeHex(token) else { return .failure(malformed) }
        let fields = plain.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == "1", let fingerprint = UInt64(fields[1], radix: 16), let createdAtMs = Int64(fields[2]),
            !fields[3].isEmpty
        else { return .failure(malformed) }
        guard fingerprint == filter.fingerprint else {
            return .failure(
                TaskError(.invalidArgument, "page_token was issued for other filters; send the same filters as for the first page"))
        }
        return .success(TaskListCursor(createdAtMs: createdAtMs, taskID: String(fields[3])))
    }

    private static let hexDigits = Array("0123456789abcdef")

    private static func decodeHex(_ token: String) -> String? {
        let utf8 = Array(token.utf8)
        guard !utf8.isEmpty, utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
