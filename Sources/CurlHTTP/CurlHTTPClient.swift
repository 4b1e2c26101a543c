import CCurl
import Foundation
import Synchronization

/// The project's one outbound HTTP client: every request of a client shares one curl multi
/// handle, so connections are reused and HTTP/2 streams multiplexed. The multi handle is driven
/// by a dedicated thread (never an event loop or the cooperative pool); callers hand transfers
/// to it through a locked inbox and `curl_multi_wakeup`.
public final class CurlHTTPClient: Sendable {
    private let loop: CurlMultiLoop

    public init() {
        loop = CurlMultiLoop()
        let loop = self.loop
        Thread.detachNewThread { loop.run() }
    }

    deinit { loop.stop() }

    /// Streams the response as it arrives. Ending the iteration early (or cancelling the
    /// iterating task) removes the transfer from curl at once.
    public func stream(_ request: HTTPRequest) -> AsyncThrowingStream<HTTPResponsePart, any Error> {
        let (stream, continuation) = AsyncThrowingStream<HTTPResponsePart, any Error>.makeStream()
        let transfer = CurlTransfer(request: request, continuation: continuation)
        let loop = self.loop
        continuation.onTermination = { termination in
            if case .cancelled = termination { loop.cancel(transfer) }
        }
        loop.add(transfer)
        return stream
    }

    /// The whole response, body collected.
    public func execute(_ request: HTTPRequest) async throws(HTTPClientError) -> HTTPResponse {
        var response = HTTPResponse(status: 0, headers: HTTPHeaders(), body: [], trailers: HTTPHeaders())
        do {
            for try await part in stream(request) {
                switch part {
                case .head(let head):
                    response.status = head.status
                    response.headers = head.headers
                case .body(let bytes): response.body += bytes
                case .trailers(let trailers): response.trailers = trailers
                }
            }
        } catch let error as HTTPClientError {
            throw error
        } catch {
            throw .cancelled
        }
        if Task.isCancelled { throw .cancelled }
        return response
    }

    /// Fails every open transfer with `clientShutDown` and ends the curl thread.
    public func shutdown() { loop.stop() }
}

/// Owns the curl multi handle. `run` is the body of the client's thread; the other methods
/// may be called from anywhere.
final class CurlMultiLoop: Sendable {
    private struct Inbox {
        var added: [CurlTransfer] = []
        var cancelled: [CurlTransfer] = []
        var stopping = false
    }

    /// The CURLM pointer. `curl_multi_wakeup` is the one call made on it from other threads;
    /// libcurl documents it as thread-safe.
    private struct MultiHandle: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }

    private let inbox = Mutex(Inbox())
    private let multi: MultiHandle

    init() {
        _ = CurlGlobal.initialized
        multi = MultiHandle(pointer: curl_multi_init())
        // Several h2 requests to one host share a connection instead of opening more.
        swapline_curl_multi_setopt_long(multi.pointer, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
    }

    func add(_ transfer: CurlTransfer) {
        let accepted = inbox.withLock { inbox in
            guard !inbox.stopping else { return false }
            inbox.added.append(transfer)
            return true
        }
        if accepted { curl_multi_wakeup(multi.pointer) } else { transfer.fail(.clientShutDown) }
    }

    func cancel(_ transfer: CurlTransfer) {
        inbox.withLock { $0.cancelled.append(transfer) }
        curl_multi_wakeup(multi.pointer)
    }

    func stop() {
        inbox.withLock { $0.stopping = true }
        curl_multi_wakeup(multi.pointer)
    }

    /// The thread body: admits and cancels transfers, drives curl, completes finished ones.
    func run() {
        var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
        while true {
            let (added, cancelled, stopping) = inbox.withLock { inbox in
                defer { inbox.added = []; inbox.cancelled = [] }
                return (inbox.added, inbox.cancelled, inbox.stopping)
            }
            for transfer in added {
                if let easy = transfer.start(in: multi.pointer) { active[easy] = transfer }
            }
            for transfer in cancelled {
                guard let easy = transfer.easy, active.removeValue(forKey: easy) != nil else { continue }
                curl_multi_remove_handle(multi.pointer, easy)
                transfer.fail(.cancelled)
            }
            if stopping {
                for (easy, transfer) in active {
                    curl_multi_remove_handle(multi.pointer, easy)
                    transfer.fail(.clientShutDown)
                }
                break
            }
            var running: Int32 = 0
            curl_multi_perform(multi.pointer, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi.pointer, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                    let transfer = active.removeValue(forKey: easy)
                else { continue }
                let result = message.pointee.data.result
                curl_multi_remove_handle(multi.pointer, easy)
                transfer.complete(result)
            }
            // Sleeps until a socket is ready, curl's next timer, or a wakeup from add/cancel/stop.
            curl_multi_poll(multi.pointer, nil, 0, 1000, nil)
        }
        // Transfers added after the last inbox read still need an answer.
        let late = inbox.withLock { inbox in
            defer { inbox.added = [] }
            return inbox.added
        }
        for transfer in late { transfer.fail(.clientShutDown) }
        curl_multi_cleanup(multi.pointer)
    }
}

/// `curl_global_init` is not thread-safe, so it runs once, before the first handle.
private enum CurlGlobal {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
}
