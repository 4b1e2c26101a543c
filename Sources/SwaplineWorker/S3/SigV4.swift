import Crypto
import Foundation

/// The parts of AWS Signature Version 4 libcurl does not do for us: presigned (query-signed)
/// GET URLs, and the encodings and hashes the signed requests carry.
enum SigV4 {
    /// RFC 3986 percent-encoding as SigV4 wants it: everything but unreserved characters (and
    /// `/` in a path) becomes `%XX`, upper-case hex.
    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                encoded.append("/")
            default:
                encoded += String(format: "%%%02X", byte)
            }
        }
        return encoded
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// The hex SHA-256 of `bytes`, as `x-amz-content-sha256` carries it.
    static func sha256Hex(_ bytes: [UInt8]) -> String { hex(SHA256.hash(data: bytes)) }

    /// A GET URL for `path` on `host` that anyone may use until `expires` seconds after `date`.
    static func presign(
        scheme: String, host: String, path: String, region: String, credentials: AWSCredentials, date: Date, expires: Int
    ) -> String {
        let (stamp, day) = timestamps(date)
        let scope = "\(day)/\(region)/s3/aws4_request"
        var query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            ("X-Amz-Date", stamp), ("X-Amz-Expires", String(expires)), ("X-Amz-SignedHeaders", "host"),
        ]
        if let token = credentials.sessionToken { query.append(("X-Amz-Security-Token", token)) }
        let canonicalQuery = query.map { (encode($0.0), encode($0.1)) }.sorted { $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
        let canonicalRequest = ["GET", path, canonicalQuery, "host:\(host)", "", "host", "UNSIGNED-PAYLOAD"].joined(separator: "\n")
        let stringToSign = ["AWS4-HMAC-SHA256", stamp, scope, sha256Hex(Array(canonicalRequest.utf8))].joined(separator: "\n")
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, "s3", "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return "\(scheme)://\(host)\(path)?\(canonicalQuery)&X-Amz-Signature=\(signature)"
    }

    /// `20130524T000000Z` and `20130524`, in UTC.
    private static func timestamps(_ date: Date) -> (stamp: String, day: String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let day = String(format: "%04d%02d%02d", parts.year!, parts.month!, parts.day!)
        return (day + String(format: "T%02d%02d%02dZ", parts.hour!, parts.minute!, parts.second!), day)
    }
}

/// The digests an upload of a file (or one part of it) carries: the hex SHA-256 the signature
/// covers and the base64 MD5 the store checks the received bytes against (`Content-MD5`).
struct PayloadDigests: Sendable, Equatable {
    var sha256Hex: String
    var md5Base64: String

    /// Reads `length` bytes of `path` from `offset` in 1 MiB chunks, off the cooperative pool.
    static func of(path: String, offset: Int64, length: Int64) async throws -> PayloadDigests {
        try await BlockingIO.run {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw CocoaError(.fileReadNoSuchFile) }
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(offset))
            var sha = SHA256()
            var md5 = Insecure.MD5()
            var remaining = length
            while remaining > 0 {
                guard let chunk = try handle.read(upToCount: Int(min(remaining, 1 << 20))), !chunk.isEmpty else {
                    throw CocoaError(.fileReadCorruptFile)
                }
                sha.update(data: chunk)
                md5.update(data: chunk)
                remaining -= Int64(chunk.count)
            }
            return PayloadDigests(sha256Hex: SigV4.hex(sha.finalize()), md5Base64: Data(md5.finalize()).base64EncodedString())
        }
    }

    static func of(_ bytes: [UInt8]) -> PayloadDigests {
        PayloadDigests(sha256Hex: SigV4.sha256Hex(bytes), md5Base64: Data(Insecure.MD5.hash(data: bytes)).base64EncodedString())
    }
}
