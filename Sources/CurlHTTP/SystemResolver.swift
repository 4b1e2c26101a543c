import CCurl
import Dispatch
import Foundation

/// The system's name resolution (`getaddrinfo`: /etc/hosts, DNS, whatever nsswitch says), for
/// callers that check every address before they let a request connect (docs/security.md).
/// `getaddrinfo` blocks, so each lookup runs on a Dispatch thread, never on an event loop or
/// the cooperative pool.
public enum SystemResolver {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// At most this many addresses of one name are returned.
    static let maxAddresses = 64

    /// Every address `host` has for TCP, each as its 4 or 16 bytes in network order; empty when
    /// the name does not exist or has no addresses.
    public static func addresses(of host: String) async throws(Failure) -> [[UInt8]] {
        let result: Result<[[UInt8]], Failure> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: lookup(host)) }
        }
        return try result.get()
    }

    private static func lookup(_ host: String) -> Result<[[UInt8]], Failure> {
        var records = [UInt8](repeating: 0, count: 17 * maxAddresses)
        let count = Int(swapline_resolve(host, &records, Int32(maxAddresses)))
        guard count >= 0 else {
            return .failure(Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(Int32(count))))"))
        }
        var addresses: [[UInt8]] = []
        for index in 0..<count {
            let record = records[(17 * index)..<(17 * index + 17)]
            let length = Int(record[record.startIndex])
            let address = Array(record.dropFirst().prefix(length))
            if !addresses.contains(address) { addresses.append(address) }
        }
        return .success(addresses)
    }
}
