import Foundation

/// Width and height of an image, read from its file header without decoding it: what
/// Cloudflare Images' 100-megapixel rule is checked against before an upload.
public struct ImageDimensions: Sendable, Equatable {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    public var pixels: Int { width * height }
}

/// Reads image dimensions from the headers of JPEG (the SOF segment), PNG (IHDR), GIF (the
/// logical screen) and WebP (VP8, VP8L or VP8X) files.
public enum ImageHeader {
    /// `count` bytes (fewer at the end) from `offset` of an image file.
    public typealias Reader = (_ offset: Int64, _ count: Int) throws -> [UInt8]

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case unrecognized
        case truncated

        public var description: String {
            switch self {
            case .unrecognized: return "not a JPEG, PNG, GIF or WebP file"
            case .truncated: return "the image header is truncated or malformed"
            }
        }
    }

    /// The dimensions of the image file at `path`, reading only its header (and, for JPEG, the
    /// segment markers before the frame header).
    public static func dimensions(ofFileAt path: String) throws -> ImageDimensions {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw Problem.unrecognized }
        defer { try? handle.close() }
        return try dimensions { offset, count in
            try handle.seek(toOffset: UInt64(offset))
            return [UInt8](try handle.read(upToCount: count) ?? Data())
        }
    }

    public static func dimensions(read: Reader) throws -> ImageDimensions {
        let head = try read(0, 30)
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try png(head) }
        if head.starts(with: Array("GIF87a".utf8)) || head.starts(with: Array("GIF89a".utf8)) { return try gif(head) }
        if head.count >= 12, head.starts(with: Array("RIFF".utf8)), Array(head[8..<12]) == Array("WEBP".utf8) { return try webP(head) }
        if head.starts(with: [0xFF, 0xD8]) { return try jpeg(read: read) }
        throw Problem.unrecognized
    }

    /// IHDR is always the first chunk: width and height big-endian at bytes 16 and 20.
    static func png(_ head: [UInt8]) throws -> ImageDimensions {
        guard head.count >= 24, Array(head[12..<16]) == Array("IHDR".utf8) else { throw Problem.truncated }
        return ImageDimensions(width: bigEndian(head, at: 16, bytes: 4), height: bigEndian(head, at: 20, bytes: 4))
    }

    /// The logical screen size, little-endian at bytes 6 and 8.
    static func gif(_ head: [UInt8]) throws -> ImageDimensions {
        guard head.count >= 10 else { throw Problem.truncated }
        return ImageDimensions(width: littleEndian(head, at: 6, bytes: 2), height: littleEndian(head, at: 8, bytes: 2))
    }

    /// The first chunk after `RIFF....WEBP`: lossy (VP8), lossless (VP8L) or extended (VP8X).
    static func webP(_ head: [UInt8]) throws -> ImageDimensions {
        guard head.count >= 30 else { throw Problem.truncated }
        switch String(decoding: head[12..<16], as: UTF8.self) {
        case "VP8 ":
            // The key frame's start code, then 14-bit width and height.
            guard Array(head[23..<26]) == [0x9D, 0x01, 0x2A] else { throw Problem.truncated }
            return ImageDimensions(
                width: littleEndian(head, at: 26, bytes: 2) & 0x3FFF, height: littleEndian(head, at: 28, bytes: 2) & 0x3FFF)
        case "VP8L":
            guard head[20] == 0x2F else { throw Problem.truncated }
            let bits = littleEndian(head, at: 21, bytes: 4)
            return ImageDimensions(width: (bits & 0x3FFF) + 1, height: ((bits >> 14) & 0x3FFF) + 1)
        case "VP8X":
            // Canvas width and height minus one, 24-bit little-endian.
            return ImageDimensions(width: littleEndian(head, at: 24, bytes: 3) + 1, height: littleEndian(head, at: 27, bytes: 3) + 1)
        default:
            throw Problem.truncated
        }
    }

    /// Walks the segments from SOI to the first start-of-frame marker (SOF0–SOF15 but DHT,
    /// JPG and DAC), whose height and width follow the sample precision.
    static func jpeg(read: Reader) throws -> ImageDimensions {
        var offset: Int64 = 2
        // A JPEG's header segments are each at most 64 KiB; this bounds the walk on odd files.
        for _ in 0..<1024 {
            let marker = try read(offset, 9)
            guard marker.count >= 4, marker[0] == 0xFF else { throw Problem.truncated }
            let kind = marker[1]
            if kind == 0xFF {  // fill byte before a marker
                offset += 1
                continue
            }
            let length = bigEndian(marker, at: 2, bytes: 2)
            if (0xC0...0xCF).contains(kind), ![0xC4, 0xC8, 0xCC].contains(kind) {
                guard marker.count >= 9 else { throw Problem.truncated }
                return ImageDimensions(width: bigEndian(marker, at: 7, bytes: 2), height: bigEndian(marker, at: 5, bytes: 2))
            }
            guard kind != 0xD9, kind != 0xDA, length >= 2 else { throw Problem.truncated }
            offset += 2 + Int64(length)
        }
        throw Problem.truncated
    }

    private static func bigEndian(_ bytes: [UInt8], at offset: Int, bytes count: Int) -> Int {
        bytes[offset..<offset + count].reduce(0) { $0 << 8 | Int($1) }
    }

    private static func littleEndian(_ bytes: [UInt8], at offset: Int, bytes count: Int) -> Int {
        bytes[offset..<offset + count].reversed().reduce(0) { $0 << 8 | Int($1) }
    }
}
