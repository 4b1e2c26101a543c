/// Content types of the files Swapline stores and serves, by file extension.
public enum MediaType {
    public static func forFileExtension(_ fileExtension: String) -> String {
        switch fileExtension.lowercased() {
        case "jpg", "jpeg": "image/jpeg"
        case "png": "image/png"
        case "gif": "image/gif"
        case "webp": "image/webp"
        case "mp4": "video/mp4"
        default: "application/octet-stream"
        }
    }

    /// The file extension of a `Content-Type` (parameters ignored); nil when unknown.
    public static func fileExtension(forContentType contentType: String?) -> String? {
        let essence = contentType?.split(separator: ";").first?.filter { $0 != " " && $0 != "\t" }.lowercased()
        switch essence {
        case "image/jpeg": return "jpg"
        case "image/png": return "png"
        case "image/gif": return "gif"
        case "image/webp": return "webp"
        case "video/mp4": return "mp4"
        default: return nil
        }
    }
}
