import Logging
import NIOCore
import NIOPosix
import RPCCore
import Testing
@testable import H2Transport

@Suite struct H2ServerConnectionLimitTests {
    private struct NoHandlers: HTTPStreamHandlerFactory {
        func makeHandler(writer: any HTTPStreamWriter) -> any HTTPStreamHandler {
            fatalError("no request is sent in these tests")
        }
    }

    /// Waits up to `milliseconds` for `channel` to be closed by the server.
    private func isClosed(_ channel: any Channel, within milliseconds: Int64) async -> Bool {
        let deadline = NIODeadline.now() + .milliseconds(milliseconds)
        while NIODeadline.now() < deadline {
            if !channel.isActive { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return !channel.isActive
    }

    @Test func connectionsPastTheLimitAreClosedAndAFreedSlotIsReused() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = H2Configuration()
        configuration.maxConnections = 2
        let server = try await H2Server.bind(
            host: "127.0.0.1", port: 0, group: group, configuration: configuration, factory: NoHandlers(),
            logger: Logger(label: "test"))
        let connect = { try await ClientBootstrap(group: group).connect(to: server.localAddress).get() }
        let first = try await connect()
        let second = try await connect()
        let third = try await connect()
        #expect(await isClosed(third, within: 5000))
        #expect(first.isActive && second.isActive)
        try await first.close()
        // The slot is free once the server has seen the close: retry until a connection stays.
        var admitted: (any Channel)?
        for _ in 0..<25 where admitted == nil {
            let candidate = try await connect()
            if !(await isClosed(candidate, within: 300)) { admitted = candidate }
        }
        #expect(admitted != nil)
        try await admitted?.close()
        try await second.close()
        await server.shutdown(grace: .milliseconds(100))
        try await group.shutdownGracefully()
    }
}
