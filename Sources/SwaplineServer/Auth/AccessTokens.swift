import Crypto
public import RPCCore

/// What a bearer token may call.
public enum AccessRole: String, Sendable, CaseIterable {
    /// `swapline.v1.TaskService`: create tasks, and read, cancel and watch its own.
    case client
    /// `swapline.v1.ConsumerService`: fetch tasks and report on them (workers).
    case consumer
    /// Every service and every task.
    case admin
}

/// A token list that cannot be used; says where, never what the token is.
public struct AccessTokenError: Error, Sendable, CustomStringConvertible {
    public let description: String

    init(_ description: String) { self.description = description }
}

/// The bearer tokens a server accepts, each with its role (`SWAPLINE_AUTH_TOKENS`,
/// `--auth-tokens-file`).
///
/// Only SHA-256 digests of the tokens are kept. A presented token is hashed and compared with
/// every configured digest, all of them and each in constant time, so neither the time nor
/// the order of the list tells an attacker how much of a token was right. Tokens never appear
/// in errors, logs or descriptions.
public struct AccessTokens: Sendable, CustomStringConvertible {
    private struct Entry: Sendable {
        let digest: [UInt8]
        let role: AccessRole
    }

    /// Longest token accepted, in bytes.
    public static let maxTokenLength = 1024

    private var entries: [Entry] = []

    public init() {}

    /// No tokens: the server does no access control.
    public var isEmpty: Bool { entries.isEmpty }

    public var count: Int { entries.count }

    /// How many tokens each role has, e.g. "2 tokens (client 1, consumer 1)": for the start-up log.
    public var description: String {
        let counts = AccessRole.allCases.compactMap { role -> String? in
            let count = entries.filter { $0.role == role }.count
            return count == 0 ? nil : "\(role.rawValue) \(count)"
        }
        return "\(entries.count) token\(entries.count == 1 ? "" : "s") (\(counts.joined(separator: ", ")))"
    }

    /// Adds one token. Tokens are 1 to 1024 visible ASCII characters (no spaces or commas:
    /// RFC 6750's token68 and more), and each may be configured once.
    public mutating func add(_ token: some StringProtocol, role: AccessRole, source: @autoclosure () -> String) throws(AccessTokenError) {
        let bytes = Array(token.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.maxTokenLength, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }) else {
            throw AccessTokenError("\(source()): a token must be 1 to \(Self.maxTokenLength) visible ASCII characters without commas")
        }
        let digest = Self.digest(bytes)
        guard !entries.contains(where: { $0.digest == digest }) else {
            throw AccessTokenError("\(source()): the same token is configured twice")
        }
        entries.append(Entry(digest: digest, role: role))
    }

    /// `role:token` pairs separated by commas, as `SWAPLINE_AUTH_TOKENS` holds them; spaces
    /// around a pair are ignored.
    public mutating func add(environmentValue value: String, name: String = "SWAPLINE_AUTH_TOKENS") throws(AccessTokenError) {
        for (index, pair) in value.split(separator: ",", omittingEmptySubsequences: true).enumerated() {
            let trimmed = pair.trimmingSpaces
            if trimmed.isEmpty { continue }
            let source = "\(name), entry \(index + 1)"
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw AccessTokenError("\(source): expected role:token")
            }
            let role = try Self.role(trimmed[..<colon], source: source)
            try add(trimmed[trimmed.index(after: colon)...], role: role, source: source)
        }
    }

    /// One `role token` per line, as a `--auth-tokens-file` holds them; blank lines and lines
    /// starting with `#` are skipped.
    public mutating func add(fileContents contents: String, path: String) throws(AccessTokenError) {
        for (index, line) in contents.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let source = "\(path), line \(index + 1)"
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count == 2 else { throw AccessTokenError("\(source): expected 'role token'") }
            try add(fields[1], role: try Self.role(fields[0], source: source), source: source)
        }
    }

    /// The caller `token` stands for, or `nil` when it is none of the configured tokens.
    public func identify(token: some StringProtocol) -> CallerIdentity? {
        let digest = Self.digest(Array(token.utf8))
        var match: Entry?
        for entry in entries where Self.constantTimeEqual(entry.digest, digest) && match == nil {
            match = entry
        }
        guard let match else { return nil }
        return CallerIdentity(subject: Self.subject(of: match.digest), role: match.role.rawValue)
    }

    /// The name a token's tasks are owned under: a prefix of its SHA-256 (128 bits), stable
    /// across restarts and servers, and no help in finding the token itself.
    private static func subject(of digest: [UInt8]) -> String {
        "sha256:" + digest.prefix(16).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    private static func role(_ name: some StringProtocol, source: String) throws(AccessTokenError) -> AccessRole {
        guard let role = AccessRole(rawValue: String(name).lowercased()) else {
            let known = AccessRole.allCases.map(\.rawValue).joined(separator: ", ")
            throw AccessTokenError("\(source): unknown role '\(name)' (one of: \(known))")
        }
        return role
    }

    private static func digest(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// Looks at every byte whatever it finds, so the time taken says nothing about where two
    /// digests differ.
    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: SubSequence {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}
