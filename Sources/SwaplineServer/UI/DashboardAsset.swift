import Foundation
import NIOCore
import RPCCore

/// One file of the web dashboard (`ui/`), embedded in the binary as text by
/// tools/generate-ui-assets.sh (`DashboardAsset.all`), and served under `/ui/`.
struct DashboardAsset: Sendable, Equatable {
    let name: String
    let contentType: String
    /// A strong validator: the first 16 hex digits of the file's SHA-256, quoted.
    let etag: String
    /// The file's bytes, made once.
    let body: ByteBuffer

    init(name: String, contentType: String, etag: String, text: String) {
        self.name = name
        self.contentType = contentType
        self.etag = etag
        self.body = ByteBuffer(string: text)
    }

    /// The page, which also answers the client-side routes (`/ui/task/ID`).
    static let page = all.first { $0.name == "index.html" }!

    /// The file a path under `/ui` names (its components after `ui`): the page for `/ui`,
    /// `/ui/` and `/ui/task/ID`, a file by its name, `nil` for anything else.
    static func forPath(_ components: ArraySlice<Substring>) -> DashboardAsset? {
        switch Array(components) {
        case [], [""]: return page
        case let parts where parts.first == "task" && (parts.count == 2 || (parts.count == 3 && parts[2].isEmpty)) && !parts[1].isEmpty:
            return page
        case let parts where parts.count == 1: return all.first { $0.name == parts[0] }
        default: return nil
        }
    }

    /// Headers of every dashboard answer. Scripts, styles, fonts and API calls come from this
    /// server only (no inline script or style); result images and videos may come from any
    /// http(s) host, because result URLs point at the storage backend (S3, Cloudflare Images,
    /// or this server's `/outputs/`), and an image cannot run code; `no-referrer` keeps the
    /// page's URL (a task id) from those hosts. No framing (clickjacking the cancel button).
    /// `no-cache`: a browser revalidates with the ETag, so an upgraded server's files are
    /// used at once.
    static let responseHeaders = [
        HeaderField(
            "content-security-policy",
            "default-src 'self'; img-src 'self' https: http:; media-src 'self' https: http:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        HeaderField("x-content-type-options", "nosniff"),
        HeaderField("x-frame-options", "DENY"),
        HeaderField("referrer-policy", "no-referrer"),
        HeaderField("cache-control", "no-cache"),
    ]

    /// Whether an `If-None-Match` value names this file's current ETag (weak comparison, as
    /// RFC 9110 asks for it): the browser's copy is current.
    func isMatched(byIfNoneMatch value: String) -> Bool {
        value.split(separator: ",").contains { candidate in
            let tag = candidate.trimmingCharacters(in: .whitespaces)
            return tag == "*" || (tag.hasPrefix("W/") ? tag.dropFirst(2) : Substring(tag)) == etag
        }
    }
}
