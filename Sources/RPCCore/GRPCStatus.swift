/// The outcome of an RPC: a code from gRPC's fixed list and a human-readable message.
///
/// `GRPCStatus` is also an `Error`, so handlers can `throw` a non-OK status and the
/// transport answers with it.
public struct GRPCStatus: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public static let ok = GRPCStatus(.ok)

    public var description: String {
        message.isEmpty ? "\(code)" : "\(code): \(message)"
    }

    /// A status code of the gRPC specification. A struct rather than an enum so that a code we
    /// do not know (sent by a newer peer) still round-trips instead of failing to decode.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: Int

        public init(rawValue: Int) { self.rawValue = rawValue }

        /// Not an error; returned on success.
        public static let ok = Code(rawValue: 0)
        /// The operation was cancelled, typically by the caller.
        public static let cancelled = Code(rawValue: 1)
        /// Unknown error, e.g. a status from another address space with an unknown code.
        public static let unknown = Code(rawValue: 2)
        /// The client specified an invalid argument, independent of the system's state.
        public static let invalidArgument = Code(rawValue: 3)
        /// The deadline expired before the operation could complete.
        public static let deadlineExceeded = Code(rawValue: 4)
        /// Some requested entity was not found.
        public static let notFound = Code(rawValue: 5)
        /// The entity that a client attempted to create already exists.
        public static let alreadyExists = Code(rawValue: 6)
        /// The caller does not have permission to execute the operation.
        public static let permissionDenied = Code(rawValue: 7)
        /// Some resource has been exhausted (a quota, a message size limit, disk space).
        public static let resourceExhausted = Code(rawValue: 8)
        /// The system is not in a state required for the operation. Litmus test: use this when
        /// the client should not retry until the system state has been explicitly fixed.
        public static let failedPrecondition = Code(rawValue: 9)
        /// The operation was aborted, typically because of a concurrency issue; retry at a
        /// higher level (for example a read-modify-write sequence).
        public static let aborted = Code(rawValue: 10)
        /// The operation was attempted past the valid range.
        public static let outOfRange = Code(rawValue: 11)
        /// The operation is not implemented or not supported.
        public static let unimplemented = Code(rawValue: 12)
        /// An invariant expected by the underlying system has been broken.
        public static let `internal` = Code(rawValue: 13)
        /// The service is currently unavailable; the client may retry with a backoff.
        public static let unavailable = Code(rawValue: 14)
        /// Unrecoverable data loss or corruption.
        public static let dataLoss = Code(rawValue: 15)
        /// The request does not have valid authentication credentials.
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        /// The upper-case name the specification uses, e.g. `NOT_FOUND`.
        public var description: String {
            Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)"
        }
    }
}
