import ArgumentParser
import Foundation
import SwaplineClient
import SwaplineConsole
import SwaplineMessages

/// The face-swap inputs of `create` and `process`.
struct FaceSwapInput: ParsableArguments {
    @Option(help: "URL of the image with the face to transfer.")
    var source: String

    @Option(help: "URL of the image or video whose face is replaced.")
    var target: String

    @Option(help: "Output size WxH (server default 1024x1024).")
    var resolution = ""

    @Option(help: "FaceFusion face swapper model (server default inswapper_128_fp16).")
    var model = ""

    @Option(
        name: .customLong("option"),
        help: ArgumentHelp("A FaceFusion option passed through, e.g. face_enhancer_model=gfpgan_1.4 (repeatable).", valueName: "key=value"))
    var options: [String] = []

    func validate() throws {
        for option in options where !option.contains("=") || option.hasPrefix("=") {
            throw ValidationError("--option \(option): expected key=value")
        }
    }

    var params: Swapline_V1_FaceSwapParams {
        var pairs: [String: String] = [:]
        for option in options {
            let separator = option.firstIndex(of: "=")!
            pairs[String(option[..<separator])] = String(option[option.index(after: separator)...])
        }
        return Swapline_V1_FaceSwapParams(sourceURL: source, targetURL: target, resolution: resolution, model: model, options: pairs)
    }
}

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queue a face-swap task and print its id (with --watch, follow it to the end).",
        discussion: """
            Examples:
              swapline create --source https://example.com/face.jpg \\
                  --target https://example.com/photo.jpg
              swapline create --source "$FACE" --target "$PHOTO" --priority 5 \\
                  --idempotency-key order-42 --watch
              swapline create --source "$FACE" --target "$PHOTO" --json \\
                  --model hyperswap_1a_256 --resolution 512x512 \\
                  --option face_enhancer_model=gfpgan_1.4

            Prints the new task's id (--json: the task as JSON). With --watch it then follows the \
            task like `swapline watch` and exits as watch does: 0 when it COMPLETED, 3 when it \
            FAILED, 4 when it was CANCELLED.
            """)

    @OptionGroup var client: ClientOptions
    @OptionGroup var input: FaceSwapInput

    @Option(help: "Scheduling priority: higher values are fetched first (default 0).")
    var priority: Int32 = 0

    @Option(help: "Makes retries safe: a second create with the same key (and token) returns the first task.")
    var idempotencyKey = ""

    @Option(help: "The processor to run (server default face_swap).")
    var workflow = ""

    @Flag(help: "Follow the task until it ends, like `swapline watch`.")
    var watch = false

    func run() async throws {
        try await ClientExit.reportingFailures {
            let connection = client.client
            let request = Swapline_V1_CreateTaskRequest(
                workflow: workflow, params: input.params, idempotencyKey: idempotencyKey, priority: priority)
            let task = try await connection.createTask(request)
            if client.json { client.printJSON(.object(LegacyJSON.task(task))) } else { print(task.taskID) }
            if watch { try await TaskWatch(options: client).follow(task.taskID, client: connection) }
        }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow a task until it ends; exit 0 when it COMPLETED.",
        discussion: """
            Examples:
              swapline watch task_01JEXAMPLE
              swapline watch task_01JEXAMPLE --json | jq .progress

            On a terminal, one line is redrawn in place: state, a progress bar, the attempt and \
            the time since the task was created. Through a pipe or into a file, one line per \
            event: "TASK_ID STATE PERCENT% attempt N". With --json, one task JSON object per \
            event per line. The result's URLs are printed at the end.

            Exit codes: 0 COMPLETED, 3 FAILED, 4 CANCELLED, 1 the call failed, 2 the server is \
            unreachable, 130 interrupted (Ctrl-C).
            """)

    @OptionGroup var client: ClientOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws {
        try await ClientExit.reportingFailures { try await TaskWatch(options: client).follow(taskID, client: client.client) }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a task: its state, parameters, result and history.",
        discussion: """
            Examples:
              swapline get task_01JEXAMPLE
              swapline get task_01JEXAMPLE --json
              export SWAPLINE_SERVER=https://swapline.example.com SWAPLINE_TOKEN="$TOKEN"
              swapline get task_01JEXAMPLE
            """)

    @OptionGroup var client: ClientOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws {
        try await ClientExit.reportingFailures {
            let task = try await client.client.getTask(id: taskID)
            if client.json { client.printJSON(LegacyJSON.taskWithHistory(task)) } else { print(TaskText.described(task), terminator: "") }
        }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel a PENDING or PROCESSING task and print it.",
        discussion: """
            Examples:
              swapline cancel task_01JEXAMPLE
              swapline cancel task_01JEXAMPLE --json

            A task that already ended stays as it was and is printed as it is.
            """)

    @OptionGroup var client: ClientOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws {
        try await ClientExit.reportingFailures {
            let task = try await client.client.cancelTask(id: taskID)
            if client.json { client.printJSON(.object(LegacyJSON.task(task))) } else { print(TaskText.described(task), terminator: "") }
        }
    }
}

struct Process: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a face-swap job, wait for it and print its result (ProcessSync).",
        discussion: """
            Examples:
              swapline process --source https://example.com/face.jpg \\
                  --target https://example.com/photo.jpg
              swapline process --source "$FACE" --target "$PHOTO" --timeout 600 --json

            Exits 0 when the job succeeded, 3 when it did not (the result says why).
            """)

    @OptionGroup var client: ClientOptions
    @OptionGroup var input: FaceSwapInput

    @Option(help: "How long to wait for the result, in seconds (at most 30 days).")
    var timeout = 120

    func validate() throws {
        try FlagRange.check(timeout, "--timeout", in: 1...Int(FlagRange.maxMilliseconds / 1000))
    }

    func run() async throws {
        try await ClientExit.reportingFailures {
            let response = try await client.client.processSync(
                Swapline_V1_ProcessSyncRequest(params: input.params), timeout: .seconds(timeout))
            if client.json {
                client.printJSON(LegacyJSON.faceSwapResponse(response))
            } else {
                print("task \(response.taskID): \(response.status) \(response.outputPath)")
                for (key, value) in response.metadata.sorted(by: { $0.key < $1.key }) { print("  \(key): \(value)") }
            }
            if response.status != "success" { throw ClientExit.taskFailed }
        }
    }
}
