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
}
