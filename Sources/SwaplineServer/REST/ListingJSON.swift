import RPCCore
import SwaplineMessages

/// The query strings of ListTasks (`GET /api/face-swap/tasks`) and GetQueueStats
/// (`GET /api/face-swap/stats`) into their requests; the answers' JSON is `LegacyJSON`'s
/// (SwaplineMessages), which the CLI's `--json` prints too.
enum ListingJSON {
    /// `?status=PENDING&status=FAILED&workflow=&created_after_ms=&created_before_ms=&idempotency_key=&page_size=&page_token=`;
    /// `status` may repeat or list names with commas (`statusListPattern`). Unknown parameters are
    /// ignored, as FastAPI does.
    static func listTasksRequest(query: Substring) -> Result<Swapline_V1_ListTasksRequest, RESTError> {
        var request = Swapline_V1_ListTasksRequest()
        for (name, value) in pairs(query) {
            let location: [JSONValue] = [.string("query"), .string(String(name))]
            switch name {
            case "status":
                for statusName in value.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let status = LegacyJSON.statusNames.first(where: { $0.1 == statusName })?.0 else {
                        return .failure(.validation([BodyReader.issue(
                            "enum", location, "Input should be 'PENDING', 'PROCESSING', 'COMPLETED', 'FAILED' or 'CANCELLED'",
                            .string(String(statusName)))]))
                    }
                    guard request.statuses.count < MessageLimits.statusesPerList else {
                        return .failure(.validation([BodyReader.issue(
                            "too_long", location, "List should have at most \(MessageLimits.statusesPerList) items after validation",
                            .string(value))]))
                    }
                    request.statuses.append(status)
                }
            case "workflow":
                guard value.utf8.count <= MessageLimits.nameBytes else {
                    return .failure(.validation([BodyReader.tooLong(location, value, maxBytes: MessageLimits.nameBytes)]))
                }
                request.workflow = value
            case "idempotency_key":
                guard value.utf8.count <= MessageLimits.idBytes else {
                    return .failure(.validation([BodyReader.tooLong(location, value, maxBytes: MessageLimits.idBytes)]))
                }
                request.idempotencyKey = value
            case "page_token":
                guard value.utf8.count <= MessageLimits.pageTokenBytes else {
                    return .failure(.validation([BodyReader.tooLong(location, value, maxBytes: MessageLimits.pageTokenBytes)]))
                }
                request.pageToken = value
            case "created_after_ms", "created_before_ms":
                guard let milliseconds = Int64(value) else { return .failure(notAnInteger(location, value)) }
                if name == "created_after_ms" { request.createdAfterMs = milliseconds } else { request.createdBeforeMs = milliseconds }
            case "page_size":
                guard let size = Int32(value) else { return .failure(notAnInteger(location, value)) }
                request.pageSize = size
            default: break
            }
        }
        return .success(request)
    }

    /// What the `status` parameter accepts: status names of the unified format, comma-separated.
    static var statusListPattern: String {
        let name = "(" + LegacyJSON.statusNames.map(\.1).joined(separator: "|") + ")"
        return "^\(name)(,\(name))*$"
    }

    /// `?workflow=`.
    static func queueStatsRequest(query: Substring) -> Result<Swapline_V1_GetQueueStatsRequest, RESTError> {
        var request = Swapline_V1_GetQueueStatsRequest()
        for (name, value) in pairs(query) where name == "workflow" {
            guard value.utf8.count <= MessageLimits.nameBytes else {
                return .failure(.validation([BodyReader.tooLong([.string("query"), .string("workflow")], value, maxBytes: MessageLimits.nameBytes)]))
            }
            request.workflow = value
        }
        return .success(request)
    }

    private static func notAnInteger(_ location: [JSONValue], _ value: String) -> RESTError {
        .validation([BodyReader.issue(
            "int_parsing", location, "Input should be a valid integer, unable to parse string as an integer", .string(value))])
    }

    /// The query's `name=value` pairs, values percent-decoded with '+' for a space.
    private static func pairs(_ query: Substring) -> [(Substring, String)] {
        query.split(separator: "&").map { pair in
            let name = pair.prefix { $0 != "=" }
            return (name, GRPCMessageEncoding.decode(String(pair.dropFirst(name.count + 1).map { $0 == "+" ? " " : $0 })))
        }
    }
}
