import ArgumentParser
import SwaplineServer

struct OpenAPI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openapi",
        abstract: "Print the OpenAPI 3.1 document of the REST routes (the one served at /openapi.json).",
        discussion: "docs/openapi.json is this output: `swapline openapi > docs/openapi.json`.")

    func run() {
        print(String(decoding: OpenAPIDocument.serialized(), as: UTF8.self), terminator: "")
    }
}
