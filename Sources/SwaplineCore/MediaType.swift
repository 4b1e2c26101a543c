/// Content types of the files Swapline stores and serves, by file extension.
public enum MediaType {
    public static func forFileExtension(_ fileExtension: String) -> String {
        switch fileExtension.lowercased() {
        case "jpg", "jpeg": "image/jpeg"
        case "png": "image/png"
        case "gif": "image/gif"
        case "webp": "image/webp"
        case "mp4", "m4v": "video/mp4"
        case "mov": "video/quicktime"
        case "webm": "video/webm"
        case "mkv": "video/x-matroska"
        case "avi": "video/x-msvideo"
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
        case "video/quicktime": return "mov"
        case "video/webm": return "webm"
        case "video/x-matroska": return "mkv"
        case "video/x-msvideo": return "avi"
        default: return nil
        }
    }
}
