import ArgumentParser
import Foundation
import SwaplineClient
import SwaplineMessages

/// What every client command (create, watch, get, cancel, process, list, stats) shares: where
/// the server is, how to trust and authenticate to it, and whether to print JSON.
struct ClientOptions: ParsableArguments {
    static let defaultServer = "http://127.0.0.1:50051"

    @Option(help: "Base URL of the Swapline server (http:// or https://); default: SWAPLINE_SERVER, else \(defaultServer).")
    var server: String?

    @Option(help: caFileHelp)
    var caFile: String?

    @Option(help: "Bearer token with the client (or admin) role; default: SWAPLINE_TOKEN.")
    var token: String?

    @Flag(help: "Print JSON for scripts (the REST shim's shapes) instead of text.")
    var json = false

    /// `--server`, else `SWAPLINE_SERVER`, else the local default.
    var serverURL: String {
        server ?? ProcessInfo.processInfo.environment["SWAPLINE_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultServer
    }

    func validate() throws {
        let scheme = serverURL.lowercased()
        guard scheme.hasPrefix("http://") || scheme.hasPrefix("https://") else {
            throw ValidationError("the server \(serverURL) is not an http:// or https:// URL (--server or SWAPLINE_SERVER)")
        }
        try validateCAFile(caFile, server: serverURL)
    }

    var client: SwaplineClient { SwaplineClient(serverURL: serverURL, caFile: caFile, bearerToken: bearerToken(option: token)) }

    /// Prints `value` as one line of compact JSON.
    func printJSON(_ value: JSONValue) {
        print(String(decoding: value.serialized(), as: UTF8.self))
    }
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

/// The exit codes of the client commands (README "Client subcommands",
/// docs/operations.md#the-client-commands); usage errors exit with ArgumentParser's 64.
enum ClientExit {
    /// A call failed with a gRPC status other than UNAVAILABLE (named on stderr).
    static let callFailed = ExitCode(1)
    /// The server could not be reached or was unavailable (UNAVAILABLE).
    static let unavailable = ExitCode(2)
    /// The task ended FAILED (watch, create --watch; process: a result other than "success").
    static let taskFailed = ExitCode(3)
    /// The task ended CANCELLED (watch, create --watch).
    static let taskCancelled = ExitCode(4)

    /// Runs a command's calls; a failed call becomes one line on stderr,
    /// `error: NOT_FOUND: task 'task_x' does not exist`, and its exit code.
    static func reportingFailures(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as SwaplineClientError {
            let message = error.message.split(whereSeparator: \.isNewline).joined(separator: " ")
            FileHandle.standardError.write(Data("error: \(error.code)\(message.isEmpty ? "" : ": " + message)\n".utf8))
            throw error.code == .unavailable ? unavailable : callFailed
        }
    }
}
