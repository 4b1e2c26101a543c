/// A JSON document with its object keys in order, so that the REST shim (and the CLI's
/// `--json`) writes exactly the bytes the original FastAPI service wrote: keys in the order
/// of its models, compact separators (`,` and `:`), non-ASCII characters as they are
/// (Python's `json.dumps(..., ensure_ascii=False, separators=(",", ":"))`).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number written without fraction or exponent that fits in 64 bits.
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A float as its shortest decimal (0.3, not 0.30000001192092896), as Python prints the
    /// value a client sent.
    public static func float(_ value: Float) -> JSONValue {
        .number(Double(value.description) ?? Double(value))
    }

    /// The value of `key` in an object (the last one, as Python keeps duplicate keys).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.0 == key }?.1
    }

    // MARK: - Writing

    /// Compact UTF-8 bytes; `indent` > 0 pretty-prints like `json.dumps(indent=...)`.
    public func serialized(indent: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        write(into: &out, indent: indent, depth: 0)
        if indent > 0 { out.append(UInt8(ascii: "\n")) }
        return out
    }

    private func write(into out: inout [UInt8], indent: Int, depth: Int) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value): out.append(contentsOf: String(value).utf8)
        case .number(let value):
            // JSON has no NaN or infinity; FastAPI refuses them, we never produce them.
            out.append(contentsOf: (value.isFinite ? value.description : "null").utf8)
        case .string(let value): Self.writeString(value, into: &out)
        case .array(let elements):
            writeContainer(open: "[", close: "]", count: elements.count, into: &out, indent: indent, depth: depth) { index, out in
                elements[index].write(into: &out, indent: indent, depth: depth + 1)
            }
        case .object(let members):
            writeContainer(open: "{", close: "}", count: members.count, into: &out, indent: indent, depth: depth) { index, out in
                Self.writeString(members[index].0, into: &out)
                out.append(contentsOf: (indent > 0 ? ": " : ":").utf8)
                members[index].1.write(into: &out, indent: indent, depth: depth + 1)
            }
        }
    }

    private func writeContainer(
        open: Unicode.Scalar, close: Unicode.Scalar, count: Int, into out: inout [UInt8], indent: Int, depth: Int,
        element: (Int, inout [UInt8]) -> Void
    ) {
        out.append(UInt8(ascii: open))
        for index in 0..<count {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            if indent > 0 { Self.newline(into: &out, spaces: indent * (depth + 1)) }
            element(index, &out)
        }
        if indent > 0, count > 0 { Self.newline(into: &out, spaces: indent * depth) }
        out.append(UInt8(ascii: close))
    }

    private static func newline(into out: inout [UInt8], spaces: Int) {
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: spaces))
    }

    private static func writeString(_ value: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0x08: out.append(contentsOf: "\\b".utf8)
            case 0x0C: out.append(contentsOf: "\\f".utf8)
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

// MARK: - Parsing

/// Why a request body is not JSON; `offset` is the byte where the parser gave up.
public struct JSONSyntaxError: Error, Equatable {
    public var message: String
    public var offset: Int
}

extension JSONValue {
    /// Parses a complete JSON text (RFC 8259; nesting limited so a hostile body cannot exhaust
    /// the stack, and items per array or object limited so a body of a million empty items does
    /// not become a million values).
    public init(parsing bytes: some Collection<UInt8>) throws(JSONSyntaxError) {
        var parser = JSONParser(bytes: Array(bytes))
        parser.skipWhitespace()
        self = try parser.value(depth: 0)
        parser.skipWhitespace()
        if parser.index < parser.bytes.count { throw parser.error("Extra data") }
    }
}

private struct JSONParser {
    static let maxDepth = 64
    /// No request body has anywhere near this many items in one array or object (a map field
    /// takes at most `MessageLimits.mapEntries`).
    static let maxItems = 1024
    let bytes: [UInt8]
    var index = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(message: message, offset: index)
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth < Self.maxDepth else { throw error("Nesting too deep") }
        guard index < bytes.count else { throw error("Expecting value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("Expecting value")
        }
    }

    private mutating func literal(_ word: String, _ value: JSONValue) throws(JSONSyntaxError) -> JSONValue {
        let expected = Array(word.utf8)
        guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw error("Expecting value")
        }
        index += expected.count
        return value
    }

    private mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        var members: [(String, JSONValue)] = []
        try items(close: "}") { parser throws(JSONSyntaxError) in
            guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: "\"") else {
                throw parser.error("Expecting property name enclosed in double quotes")
            }
            let key = try parser.string()
            parser.skipWhitespace()
            guard parser.index < parser.bytes.count, parser.bytes[parser.index] == UInt8(ascii: ":") else {
                throw parser.error("Expecting ':' delimiter")
            }
            parser.index += 1
            parser.skipWhitespace()
            members.append((key, try parser.value(depth: depth + 1)))
        }
        return .object(members)
    }

    private mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        var elements: [JSONValue] = []
        try items(close: "]") { parser throws(JSONSyntaxError) in elements.append(try parser.value(depth: depth + 1)) }
        return .array(elements)
    }

    /// The comma-separated items of an object or array, from its opening bracket to `close`.
    private mutating func items(
        close: Unicode.Scalar, _ item: (inout JSONParser) throws(JSONSyntaxError) -> Void
    ) throws(JSONSyntaxError) {
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: close) {
            index += 1
            return
        }
        var count = 0
        while true {
            count += 1
            guard count <= Self.maxItems else { throw error("More than \(Self.maxItems) items in one array or object") }
            skipWhitespace()
            try item(&self)
            skipWhitespace()
            guard index < bytes.count else { throw error("Expecting ',' delimiter") }
            if bytes[index] == UInt8(ascii: close) {
                index += 1
                return
            }
            guard bytes[index] == UInt8(ascii: ",") else { throw error("Expecting ',' delimiter") }
            index += 1
        }
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        index += 1
        var out: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: out, as: UTF8.self) else { throw error("Invalid UTF-8 in string") }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { break }
                try escape(into: &out)
            case 0..<0x20:
                throw error("Invalid control character at")
            default:
                out.append(byte)
                index += 1
            }
        }
        throw error("Unterminated string starting at")
    }

    private mutating func escape(into out: inout [UInt8]) throws(JSONSyntaxError) {
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
            UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        ]
        if let replacement = simple[bytes[index]] {
            out.append(replacement)
            index += 1
            return
        }
        guard bytes[index] == UInt8(ascii: "u") else { throw error("Invalid \\escape") }
        index += 1
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u")
        {
            let saved = index
            index += 2
            let low = try hex4()
            if (0xDC00..<0xE000).contains(low) {
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else {
                index = saved
            }
        }
        // A lone surrogate becomes U+FFFD: Swift strings hold valid Unicode only.
        let character = Unicode.Scalar(scalar) ?? "\u{FFFD}"
        out.append(contentsOf: String(character).utf8)
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw error("Invalid \\uXXXX escape") }
        var value: UInt32 = 0
        for byte in bytes[index..<index + 4] {
            guard let digit = Self.hexDigit(byte) else { throw error("Invalid \\uXXXX escape") }
            value = value << 4 | digit
        }
        index += 4
        return value
    }

    private static func hexDigit(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONValue {
        let start = index
        var isInteger = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: "0") {
            index += 1  // no leading zeros: "01" is 0 followed by extra data
        } else {
            guard digits() > 0 else { throw error("Expecting value") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard digits() > 0 else { throw error("Expecting value") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw error("Expecting value") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let value = Int64(text) { return .integer(value) }
        return .number(Double(text) ?? .infinity)
    }

    private mutating func digits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }
}
