import ArgumentParser
import Foundation
import SwaplineClient
import SwaplineMessages

/// `--server` and `--ca-file` of the client subcommands.
struct ServerOption: ParsableArguments {
    @Option(help: "Base URL of the Swapline server (http:// or https://).")
    var server = "http://127.0.0.1:50051"

    @Option(help: caFileHelp)
    var caFile: String?

    @Option(help: "Bearer token with the client (or admin) role; default: SWAPLINE_TOKEN.")
    var token: String?

    func validate() throws { try validateCAFile(caFile, server: server) }

    var client: SwaplineClient { SwaplineClient(serverURL: server, caFile: caFile, bearerToken: bearerToken(option: token)) }
}

let caFileHelp = ArgumentHelp(
    "PEM certificates of the authorities an https:// server's certificate must chain to (a private CA), instead of the system's trust store.",
    valueName: "file")

/// `--ca-file` only means something for an `https://` server, and must be readable: said at
/// once rather than as a TLS error at the first call (or never, for an `http://` server).
func validateCAFile(_ caFile: String?, server: String) throws {
    guard let caFile else { return }
    guard server.lowercased().hasPrefix("https://") else {
        throw ValidationError("--ca-file needs an https:// --server (\(server) is not encrypted)")
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: caFile, isDirectory: &isDirectory), !isDirectory.boolValue,
        FileManager.default.isReadableFile(atPath: caFile)
    else {
        throw ValidationError("--ca-file \(caFile): no such readable file")
    }
}

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

    var params: Swapline_V1_FaceSwapParams {
        Swapline_V1_FaceSwapParams(sourceURL: source, targetURL: target, resolution: resolution, model: model)
    }
}

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Queue a face-swap task and print its id (with --watch, follow it to the end).")

    @OptionGroup var connection: ServerOption
    @OptionGroup var input: FaceSwapInput

    @Flag(help: "Print each change of the task until it ends; exit 1 unless it COMPLETED.")
    var watch = false

    func run() async throws {
        let client = connection.client
        let task = try await client.createTask(Swapline_V1_CreateTaskRequest(params: input.params))
        print(task.taskID)
        if watch { try await follow(task.taskID, client: client) }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print each change of a task until it ends; exit 1 unless it COMPLETED.")

    @OptionGroup var connection: ServerOption
    @Argument(help: "The task id.") var taskID: String

    func run() async throws { try await follow(taskID, client: connection.client) }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a task.")

    @OptionGroup var connection: ServerOption
    @Argument(help: "The task id.") var taskID: String

    func run() async throws { describe(try await connection.client.getTask(id: taskID)) }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a task and print it.")

    @OptionGroup var connection: ServerOption
    @Argument(help: "The task id.") var taskID: String

    func run() async throws { describe(try await connection.client.cancelTask(id: taskID)) }
}

struct Process: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a face-swap job and print its FaceSwapResponse (ProcessSync).")

    @OptionGroup var connection: ServerOption
    @OptionGroup var input: FaceSwapInput

    @Option(help: "How long to wait for the result, in seconds (at most 30 days).")
    var timeout = 120

    func validate() throws {
        try FlagRange.check(timeout, "--timeout", in: 1...Int(FlagRange.maxMilliseconds / 1000))
    }

    func run() async throws {
        let response = try await connection.client.processSync(
            Swapline_V1_ProcessSyncRequest(params: input.params), timeout: .seconds(timeout))
        print("task \(response.taskID): \(response.status) \(response.outputPath)")
        for (key, value) in response.metadata.sorted(by: { $0.key < $1.key }) { print("  \(key): \(value)") }
        if response.status != "success" { throw ExitCode.failure }
    }
}

/// Prints the task's events until it ends; fails unless it COMPLETED.
private func follow(_ taskID: String, client: SwaplineClient) async throws {
    var last: Swapline_V1_Task?
    for try await event in client.watchTask(id: taskID) {
        guard let task = event.task else { continue }
        // The server keeps progress in 0...1; clamped anyway, as Int(_:) traps on NaN or infinity.
        let percent = task.progress.isFinite ? Int((min(max(task.progress, 0), 1) * 100).rounded()) : 0
        print("\(task.taskID) \(statusName(task.status)) \(percent)%")
        fflush(nil)  // progress shows as it happens, also through a pipe
        last = task
    }
    guard let last else { throw ExitCode.failure }
    describe(last)
    if last.status != .completed { throw ExitCode.failure }
}

private func describe(_ task: Swapline_V1_Task) {
    print("task \(task.taskID): \(statusName(task.status)), attempt \(task.attempt)")
    if !task.error.isEmpty { print("  error: \(task.error)") }
    if let result = task.result {
        print("  output_url: \(result.outputURL)")
        for (format, url) in result.outputs.sorted(by: { $0.key < $1.key }) { print("  \(format): \(url)") }
        print("  processing_time: \(result.processingTime) s, job_id: \(result.jobID), storage: \(result.storageProvider)")
    }
}

private func statusName(_ status: Swapline_V1_TaskStatus) -> String {
    switch status {
    case .pending: "PENDING"
    case .processing: "PROCESSING"
    case .completed: "COMPLETED"
    case .failed: "FAILED"
    case .cancelled: "CANCELLED"
    case .unspecified, .unrecognized: "UNSPECIFIED"
    }
}
