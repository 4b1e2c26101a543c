/// The headers of one part of a `multipart/form-data` body (RFC 7578).
public struct FormPartHead: Sendable, Equatable {
    public var name: String
    public var filename: String?
    public var contentType: String?
}

/// `multipart/form-data` bodies: the boundary of a content type, the header lines of a part;
/// errors say what is malformed.
public enum MultipartForm {
    public struct Malformed: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// The `boundary` parameter of a `multipart/form-data` content type, or `nil`.
    public static func boundary(ofContentType contentType: String) -> String? {
        let pieces = contentType[...].split(separator: ";").map { $0.trimmingPrefixWhitespace() }
        guard let kind = pieces.first, kind.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            var value = Substring(pair[1])
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            // RFC 2046 §5.1.1: 1 to 70 characters.
            return (1...70).contains(value.count) ? String(value) : nil
        }
        return nil
    }

    /// A part's name, file name and type from its header lines.
    static func partHead(headerLines: ArraySlice<UInt8>) throws(Malformed) -> FormPartHead {
        var head = FormPartHead(name: "", filename: nil, contentType: nil)
        for line in String(decoding: headerLines, as: UTF8.self).split(separator: "\r\n") {
            let pair = line.split(separator: ":", maxSplits: 1)
            guard pair.count == 2 else { throw Malformed(description: "multipart part header '\(line.prefix(80))' has no colon") }
            let value = pair[1].trimmingPrefixWhitespace()
            switch pair[0].lowercased() {
            case "content-disposition":
                head.name = parameter("name", in: value) ?? ""
                head.filename = parameter("filename", in: value)
            case "content-type":
                head.contentType = String(value)
            default:
                break
            }
        }
        guard !head.name.isEmpty else { throw Malformed(description: "multipart part without a Content-Disposition name") }
        return head
    }

    /// A `key="value"` (or bare `key=value`) parameter of a Content-Disposition value.
    static func parameter(_ key: String, in value: Substring) -> String? {
        for piece in value.split(separator: ";").dropFirst() {
            let pair = piece.trimmingPrefixWhitespace().split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].lowercased() == key else { continue }
            let raw = pair[1]
            return raw.hasPrefix("\"") && raw.hasSuffix("\"") && raw.count >= 2 ? String(raw.dropFirst().dropLast()) : String(raw)
        }
        return nil
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard let first = needle.first, start >= 0 else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            guard let candidate = haystack[index...].firstIndex(of: first), candidate + needle.count <= haystack.count else { return nil }
            if haystack[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
            index = candidate + 1
        }
        return nil
    }
}

extension Substring {
    func trimmingPrefixWhitespace() -> Substring {
        drop { $0 == " " || $0 == "\t" }
    }
}

/// Splits a `multipart/form-data` body into its parts as it is fed, in pieces of any size: a
/// part's bytes are passed on as they come (all but the few that may begin the next boundary
/// line), so a large upload never sits in memory whole.
public struct MultipartStreamParser {
    public enum Event: Equatable {
        case partBegan(FormPartHead)
        case bodyBytes(ArraySlice<UInt8>)
        case partEnded
    }

    private enum State {
        case preamble, afterBoundary, headers, body, done
    }

    /// Longest header block of one part.
    static let maxHeaderBytes = 16 * 1024
    private let delimiter: [UInt8]
    private let separator: [UInt8]
    private var buffer: [UInt8] = []
    private var state = State.preamble

    public init(boundary: String) {
        delimiter = Array("--\(boundary)".utf8)
        separator = Array("\r\n--\(boundary)".utf8)
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(MultipartForm.Malformed) -> [Event] {
        buffer += bytes
        var events: [Event] = []
        while true {
            switch state {
            case .preamble:
                guard let at = MultipartForm.firstIndex(of: delimiter, in: buffer, from: 0) else {
                    buffer.removeFirst(max(0, buffer.count - delimiter.count + 1))
                    return events
                }
                buffer.removeFirst(at + delimiter.count)
                state = .afterBoundary
            case .afterBoundary:
                guard buffer.count >= 2 else { return events }
                if buffer.starts(with: Array("--".utf8)) {
                    state = .done
                    continue
                }
                guard buffer.starts(with: Array("\r\n".utf8)) else {
                    throw MultipartForm.Malformed(description: "multipart boundary line is not followed by CRLF")
                }
                buffer.removeFirst(2)
                state = .headers
            case .headers:
                // No header lines at all: the blank line follows the boundary line at once.
                let end = buffer.starts(with: Array("\r\n".utf8)) ? -2 : MultipartForm.firstIndex(of: Array("\r\n\r\n".utf8), in: buffer, from: 0)
                guard let end else {
                    guard buffer.count <= Self.maxHeaderBytes else {
                        throw MultipartForm.Malformed(description: "multipart part headers are longer than \(Self.maxHeaderBytes) bytes")
                    }
                    return events
                }
                events.append(.partBegan(try MultipartForm.partHead(headerLines: buffer[0..<max(0, end)])))
                buffer.removeFirst(end + 4)
                state = .body
            case .body:
                if let at = MultipartForm.firstIndex(of: separator, in: buffer, from: 0) {
                    if at > 0 { events.append(.bodyBytes(buffer[0..<at])) }
                    events.append(.partEnded)
                    buffer.removeFirst(at + separator.count)
                    state = .afterBoundary
                    continue
                }
                let passed = buffer.count - (separator.count - 1)
                if passed > 0 {
                    events.append(.bodyBytes(buffer[0..<passed]))
                    buffer.removeFirst(passed)
                }
                return events
            case .done:
                buffer = []  // the epilogue is ignored
                return events
            }
        }
    }

    /// The body ended: an error unless its closing boundary came.
    public func finish() throws(MultipartForm.Malformed) {
        switch state {
        case .done: return
        case .preamble: throw MultipartForm.Malformed(description: "multipart body has no boundary line")
        case .headers: throw MultipartForm.Malformed(description: "multipart part headers do not end")
        case .afterBoundary, .body: throw MultipartForm.Malformed(description: "multipart body does not end with its closing boundary")
        }
    }
}
