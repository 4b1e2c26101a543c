/// Request or response metadata: an ordered list of header pairs with lower-case names.
///
/// Values of keys ending in `-bin` are binary and travel base64-encoded; this type keeps them
/// in their wire form, so echoing metadata back is lossless.
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, String)...) {
        for (name, value) in elements { append(name, value) }
    }

    public mutating func append(_ name: String, _ value: String) {
        entries.append(Entry(name: name.lowercased(), value: value))
    }

    /// For names already lower-case, as HTTP/2 guarantees for received headers.
    mutating func appendLowercased(_ name: String, _ value: String) {
        entries.append(Entry(name: name, value: value))
    }

    /// The first value stored under `name` (case-insensitive), if any.
    public subscript(name: String) -> String? {
        let key = name.lowercased()
        return entries.first { $0.name == key }?.value
    }

    public var isEmpty: Bool { entries.isEmpty }

    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }

    /// Whether `name` may be sent as application metadata: reserved HTTP/2 and gRPC
    /// transport headers are never echoed or forwarded.
    public static func isApplicationMetadata(_ name: String) -> Bool {
        if name.hasPrefix(":") || name.hasPrefix("grpc-") { return false }
        switch name {
        case "content-type", "te", "user-agent", "content-length", "host", "connection",
            "transfer-encoding", "keep-alive", "upgrade", "proxy-connection":
            return false
        default:
            return true
        }
    }
}
