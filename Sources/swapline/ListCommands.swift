import ArgumentParser
import SwaplineClient
import SwaplineConsole
import SwaplineMessages

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List tasks, newest first, as a table (ListTasks).",
        discussion: """
            Examples:
              swapline list
              swapline list --status PENDING --status PROCESSING --workflow face_swap
              swapline list --created-after 2026-12-04T00:00:00Z \\
                  --created-before 1764892800000 --all
              swapline list --idempotency-key order-42 --json
              swapline list --limit 100 --page-token "$TOKEN_OF_THE_PREVIOUS_PAGE"

            One page at a time (--limit tasks, default 50); the last line names the next page's \
            token when there is one. --all walks every page. A client token lists its own \
            tasks, an admin token every task. With --json: {"tasks":[…],"next_page_token":…}.
            """)

    @OptionGroup var client: ClientOptions

    @Option(help: ArgumentHelp("Only tasks in this state (repeatable): PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED.", valueName: "state"))
    var status: [String] = []

    @Option(help: "Only tasks of this workflow.")
    var workflow = ""

    @Option(help: ArgumentHelp("Only tasks created at or after this time: ISO 8601 (UTC unless a zone is given) or milliseconds since the epoch.", valueName: "time"))
    var createdAfter: String?

    @Option(help: ArgumentHelp("Only tasks created before this time (as --created-after).", valueName: "time"))
    var createdBefore: String?

    @Option(help: "Only the task created with this idempotency key.")
    var idempotencyKey = ""

    @Option(help: "Tasks per page, 1-1000 (server default 50).")
    var limit: Int?

    @Option(help: "The next_page_token of the previous page (same filters).")
    var pageToken = ""

    @Flag(help: "Walk every page, not only the first.")
    var all = false

    func validate() throws {
        for name in status where Self.state(name) == nil {
            throw ValidationError("--status \(name): expected one of \(LegacyJSON.statusNames.map(\.1).joined(separator: ", "))")
        }
        for (flag, value) in [("--created-after", createdAfter), ("--created-before", createdBefore)] {
            if let value, TimeArgument.milliseconds(value) == nil {
                throw ValidationError("\(flag) \(value): expected ISO 8601 (2026-12-04T23:50:00Z) or milliseconds since the epoch")
            }
        }
        if let limit { try FlagRange.check(limit, "--limit", in: 1...1000) }
        if all, !pageToken.isEmpty { throw ValidationError("--all starts at the first page; it takes no --page-token") }
    }

    func run() async throws {
        try await ClientExit.reportingFailures {
            var request = Swapline_V1_ListTasksRequest(
                statuses: status.compactMap(Self.state), workflow: workflow,
                createdAfterMs: createdAfter.flatMap(TimeArgument.milliseconds) ?? 0,
                createdBeforeMs: createdBefore.flatMap(TimeArgument.milliseconds) ?? 0, idempotencyKey: idempotencyKey,
                pageSize: Int32(limit ?? 0), pageToken: pageToken)
            let connection = client.client
            var page = try await connection.listTasks(request)
            var tasks = page.tasks
            while all, !page.nextPageToken.isEmpty {
                request.pageToken = page.nextPageToken
                page = try await connection.listTasks(request)
                tasks += page.tasks
            }
            let shown = Swapline_V1_ListTasksResponse(tasks: tasks, nextPageToken: page.nextPageToken)
            if client.json {
                client.printJSON(LegacyJSON.taskList(shown))
            } else {
                print(TaskTable.rendered(shown.tasks), terminator: "")
                if !shown.nextPageToken.isEmpty { print("next page: --page-token \(shown.nextPageToken)") }
            }
        }
    }

    /// A state by its name, in any case.
    static func state(_ name: String) -> Swapline_V1_TaskStatus? {
        LegacyJSON.statusNames.first { $0.1 == name.uppercased() }?.0
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the queue's figures (GetQueueStats).",
        discussion: """
            Examples:
              swapline stats
              swapline stats --workflow face_swap --json

            A table of task counts by workflow and state, then the age of the oldest PENDING \
            task, the active leases, the consumers waiting in FetchTask and the last minute's \
            finished and failed tasks. A client token counts its own tasks; the consumer figures \
            are shown to admin tokens only. With --json: the JSON of GET /api/face-swap/stats.
            """)

    @OptionGroup var client: ClientOptions

    @Option(help: "Only this workflow.")
    var workflow = ""

    func run() async throws {
        try await ClientExit.reportingFailures {
            let stats = try await client.client.queueStats(workflow: workflow)
            if client.json { client.printJSON(LegacyJSON.queueStats(stats)) } else { print(StatsTable.rendered(stats), terminator: "") }
        }
    }
}
