import ArgumentParser
import H2Transport
import NIOCore
import SwaplineServer

/// The connection limit, timeouts and buffer bounds of `serve`'s listener (docs/security.md,
/// "Connections and HTTP/2").
struct TransportLimitOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Most connections open at once (HTTP/2, HTTP/1.1 and TLS together); more are closed as soon as they are accepted. Default: three quarters of the open-file limit (ulimit -n), between 64 and 16384.",
            valueName: "count"))
    // Optional rather than defaulted, so `--help` does not print this machine's figure.
    var maxConnections: Int?

    @Option(help: "Time a TLS connection has to complete its handshake, in ms (with --tls-cert); then it is closed.")
    var tlsHandshakeTimeoutMs: Int64 = 10_000

    @Option(help: "Time a new connection has to show its protocol, in ms (after the TLS handshake): the HTTP/2 preface and SETTINGS, or the first bytes of an HTTP/1.1 request.")
    var prefaceTimeoutMs: Int64 = 10_000

    @Option(help: "Time a request head may take once begun (HTTP/2 HEADERS and CONTINUATION frames, HTTP/1.1 header lines), in ms.")
    var headerTimeoutMs: Int64 = 10_000

    @Option(help: "Time an unfinished request body may go without a byte, in ms; then the call ends (gRPC: DEADLINE_EXCEEDED) and the stream is reset.")
    var bodyTimeoutMs: Int64 = 30_000

    @Option(help: "Time queued output may wait for a client that takes none (socket full or HTTP/2 window closed), in ms; then the connection is closed.")
    var sendTimeoutMs: Int64 = 30_000

    @Option(help: "Time a connection may stay idle, in ms, then it is closed: HTTP/2 with no frame or byte in either direction, open streams or not; HTTP/1.1 between requests.")
    var idleTimeoutMs: Int64 = 300_000

    @Option(
        help: ArgumentHelp(
            "Response bytes one HTTP/2 stream may have queued for a client that does not take them; past it the stream is reset.",
            valueName: "bytes"))
    var maxQueuedBytesPerStream: Int = 8 * 1024 * 1024

    @Option(
        help: ArgumentHelp(
            "Response bytes all streams of one HTTP/2 connection may have queued; past it the connection is closed (GOAWAY ENHANCE_YOUR_CALM).",
            valueName: "bytes"))
    var maxQueuedBytesPerConnection: Int = 32 * 1024 * 1024

    @Option(help: "Longest a unary gRPC call may run, in ms, with no grpc-timeout or a longer one (streaming calls are not bounded); then DEADLINE_EXCEEDED.")
    var maxUnaryDeadlineMs: Int64 = 300_000

    private static let longestTimeoutMs: Int64 = 86_400_000

    func validate() throws {
        let openFiles = FileDescriptorLimit.current
        if let maxConnections, !(1...openFiles).contains(maxConnections) {
            throw ValidationError("--max-connections must be between 1 and the open-file limit (\(openFiles)), got \(maxConnections)")
        }
        let timeouts: [(String, Int64)] = [
            ("--tls-handshake-timeout-ms", tlsHandshakeTimeoutMs),
            ("--preface-timeout-ms", prefaceTimeoutMs), ("--header-timeout-ms", headerTimeoutMs),
            ("--body-timeout-ms", bodyTimeoutMs), ("--send-timeout-ms", sendTimeoutMs),
            ("--idle-timeout-ms", idleTimeoutMs), ("--max-unary-deadline-ms", maxUnaryDeadlineMs),
        ]
        for (flag, value) in timeouts where !(100...Self.longestTimeoutMs).contains(value) {
            throw ValidationError("\(flag) must be between 100 and \(Self.longestTimeoutMs) (24 hours), got \(value)")
        }
        guard (64 * 1024...1 << 30).contains(maxQueuedBytesPerStream) else {
            throw ValidationError("--max-queued-bytes-per-stream must be between 65536 and 1073741824, got \(maxQueuedBytesPerStream)")
        }
        guard (maxQueuedBytesPerStream...1 << 32).contains(maxQueuedBytesPerConnection) else {
            throw ValidationError(
                "--max-queued-bytes-per-connection must be at least --max-queued-bytes-per-stream (\(maxQueuedBytesPerStream)) and at most 4294967296, got \(maxQueuedBytesPerConnection)")
        }
    }

    func apply(to configuration: inout ServerConfiguration) {
        configuration.http2.maxConnections = maxConnections ?? H2Configuration.defaultMaxConnections
        configuration.http2.tlsHandshakeTimeout = .milliseconds(tlsHandshakeTimeoutMs)
        configuration.http2.prefaceTimeout = .milliseconds(prefaceTimeoutMs)
        configuration.http2.headerTimeout = .milliseconds(headerTimeoutMs)
        configuration.http2.bodyProgressTimeout = .milliseconds(bodyTimeoutMs)
        configuration.http2.sendProgressTimeout = .milliseconds(sendTimeoutMs)
        configuration.http2.idleTimeout = .milliseconds(idleTimeoutMs)
        configuration.http2.maxQueuedBytesPerStream = maxQueuedBytesPerStream
        configuration.http2.maxQueuedBytesPerConnection = maxQueuedBytesPerConnection
        configuration.grpc.maxUnaryDeadline = .milliseconds(maxUnaryDeadlineMs)
    }
}
