/// One part of a `multipart/form-data` body (RFC 7578).
public struct FormPart: Sendable, Equatable {
    public var name: String
    public var filename: String?
    public var contentType: String?
    public var body: ArraySlice<UInt8>
}

/// Splits a `multipart/form-data` body into its parts; errors say what is malformed.
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

    public static func parse(_ body: [UInt8], boundary: String) throws(Malformed) -> [FormPart] {
        let delimiter = Array("--\(boundary)".utf8)
        let separator = Array("\r\n".utf8) + delimiter
        guard var position = firstIndex(of: delimiter, in: body, from: 0) else {
            throw Malformed(description: "multipart body has no boundary line")
        }
        var parts: [FormPart] = []
        while true {
            position += delimiter.count
            if body[position...].starts(with: Array("--".utf8)) { return parts }
            guard body[position...].starts(with: Array("\r\n".utf8)) else {
                throw Malformed(description: "multipart boundary line is not followed by CRLF")
            }
            let headerStart = position + 2
            guard let headerEnd = firstIndex(of: Array("\r\n\r\n".utf8), in: body, from: headerStart - 2) else {
                throw Malformed(description: "multipart part headers do not end")
            }
            guard let next = firstIndex(of: separator, in: body, from: headerEnd + 4) else {
                throw Malformed(description: "multipart body does not end with its closing boundary")
            }
            var part = FormPart(name: "", filename: nil, contentType: nil, body: body[(headerEnd + 4)..<next])
            let headers = headerEnd > headerStart ? String(decoding: body[headerStart..<headerEnd], as: UTF8.self) : ""
            for line in headers.split(separator: "\r\n") {
                let pair = line.split(separator: ":", maxSplits: 1)
                guard pair.count == 2 else { throw Malformed(description: "multipart part header '\(line.prefix(80))' has no colon") }
                let value = pair[1].trimmingPrefixWhitespace()
                switch pair[0].lowercased() {
                case "content-disposition":
                    part.name = parameter("name", in: value) ?? ""
                    part.filename = parameter("filename", in: value)
                case "content-type":
                    part.contentType = String(value)
                default:
                    break
                }
            }
            guard !part.name.isEmpty else { throw Malformed(description: "multipart part without a Content-Disposition name") }
            parts.append(part)
            position = next + 2
        }
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
