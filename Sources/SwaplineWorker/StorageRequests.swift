import CurlHTTP

/// Why one try of a storage provider's request did not succeed, as the provider judges its
/// answer: what to tell the client, and whether another try may succeed.
struct StorageTryFailure: Equatable {
    var summary: String
    var retryable: Bool
    var retryAfter: Duration?
}

/// The request loop the storage backends share: one request tried again with the backoff of a
/// `RetryPolicy` while the provider's judgement (or a transport failure) says it may pass.
enum StorageRequests {
    /// `request` until `isAnswer` takes a response; a response it does not take is judged by
    /// `judge`, a transport failure is always worth another try. Fails with the last summary and
    /// the number of tries, naming `provider` and `what`; `endpoint` names what a connection
    /// failed to reach ("the endpoint", "the API"), never its address.
    static func send(
        _ request: HTTPRequest, http: CurlHTTPClient, policy: RetryPolicy, provider: String, what: String, endpoint: String,
        isAnswer: (HTTPResponse) -> Bool, judge: (HTTPResponse) -> StorageTryFailure
    ) async throws(StorageFailure) -> HTTPResponse {
        var attempt = 1
        while true {
            let failure: StorageTryFailure
            do {
                let response = try await http.execute(request)
                if isAnswer(response) { return response }
                failure = judge(response)
            } catch {
                if error == .cancelled { throw StorageFailure(provider: provider, reason: "\(what): cancelled") }
                failure = StorageTryFailure(summary: transportSummary(error, endpoint: endpoint), retryable: true, retryAfter: nil)
            }
            guard failure.retryable, attempt < policy.maxAttempts else {
                throw StorageFailure(
                    provider: provider, reason: "\(what): \(failure.summary) after \(attempt) \(attempt == 1 ? "try" : "tries")")
            }
            let wait = policy.delay(afterAttempt: attempt, retryAfter: failure.retryAfter, jitter: Double.random(in: 0..<1))
            do { try await Task.sleep(for: wait) } catch {
                throw StorageFailure(provider: provider, reason: "\(what): cancelled")
            }
            attempt += 1
        }
    }

    /// A `Retry-After` of whole seconds; other forms are left to the backoff.
    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let value = headers["retry-after"], let seconds = Int(value), seconds >= 0 else { return nil }
        return .seconds(seconds)
    }

    /// Only the kind of a transport failure: what the connection met (addresses) is not for
    /// the client.
    static func transportSummary(_ error: HTTPClientError, endpoint: String) -> String {
        switch error {
        case .timedOut: "timed out"
        case .couldNotConnect: "could not connect to \(endpoint)"
        default: "the connection failed"
        }
    }
}
