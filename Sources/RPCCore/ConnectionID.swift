import Synchronization

/// Which transport connection a call arrived on, so that per-connection limits (parked long
/// polls, open watches) can count calls by it. Unique for the life of the process.
public struct ConnectionID: Sendable, Hashable, CustomStringConvertible {
    private static let last = Atomic<UInt64>(0)

    public let rawValue: UInt64

    /// A new identity, for a connection just accepted.
    public static func next() -> ConnectionID {
        ConnectionID(rawValue: last.add(1, ordering: .relaxed).newValue)
    }

    public var description: String { "connection \(rawValue)" }
}
