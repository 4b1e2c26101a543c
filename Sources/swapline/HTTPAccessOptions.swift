import ArgumentParser
import SwaplineServer

/// Which browser-reachable names the REST routes answer (docs/security.md, "HTTP/1.1 and
/// `/outputs/`").
struct HTTPAccessOptions: ParsableArguments {
    @Option(
        name: .customLong("allowed-host"),
        help: ArgumentHelp(
            "Also answer REST and /outputs/ requests whose Host (:authority) is this name, with any port (repeatable). A server on a loopback address answers only loopback names otherwise (DNS rebinding protection); on another address, giving this flag restricts it to these names and the loopback ones.",
            valueName: "name"))
    var allowedHosts: [String] = []

    func validate() throws {
        for name in allowedHosts where name.isEmpty || name.contains(where: { $0 == "/" || $0 == " " || $0 == "," }) {
            throw ValidationError("--allowed-host takes a host name or address (no scheme, path, space or comma): '\(name)'")
        }
    }

    func apply(to configuration: inout ServerConfiguration) {
        configuration.allowedHosts = allowedHosts
    }
}
