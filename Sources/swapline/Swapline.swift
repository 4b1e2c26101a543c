import ArgumentParser

@main
struct Swapline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapline",
        abstract: "A gRPC task service for FaceFusion face-swap jobs.",
        discussion: """
            Clients create face-swap tasks and watch their progress; consumers long-poll for \
            work and report back. See README.md and docs/ for the API and the architecture.
            """,
        subcommands: [Serve.self, Worker.self, Engine.self, Create.self, Process.self, Watch.self, Get.self, Cancel.self, List.self, Stats.self, OpenAPI.self, Check.self, CopyStore.self])
}
