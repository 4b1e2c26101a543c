import Foundation

/// A `POST /process` body, split from the file it was spooled to: the `source` and `target`
/// parts written to files of their own, every other part kept in memory (the small `job`).
struct UploadedForm {
    struct UploadedFile {
        var head: FormPartHead
        var path: String
    }

    /// The parts written to files; the first part of each name counts.
    static let fileParts: Set<String> = ["source", "target"]
    /// Largest in-memory part.
    static let maxFieldBytes = 1024 * 1024
    static let readSize = 1024 * 1024

    var fields: [String: [UInt8]] = [:]
    var files: [String: UploadedFile] = [:]

    /// The engine could not read the spooled body or write a part (a server fault, not the
    /// client's).
    struct StorageFailure: Error {
        var path: String
    }

    /// Reads `bodyFile` a piece at a time; the file parts go to `directory/{name}`. Throws
    /// `MultipartForm.Malformed` for a bad body, another error when the disk fails. Blocking:
    /// call off the event loops.
    static func read(bodyFile: String, boundary: String, into directory: String) throws -> UploadedForm {
        guard let body = FileHandle(forReadingAtPath: bodyFile) else { throw StorageFailure(path: bodyFile) }
        defer { try? body.close() }
        var form = UploadedForm()
        var parser = MultipartStreamParser(boundary: boundary)
        var current: (head: FormPartHead, sink: FileHandle?, field: [UInt8]?)?
        do {
            while let piece = try body.read(upToCount: readSize), !piece.isEmpty {
                for event in try parser.feed(piece) {
                    switch event {
                    case .partBegan(let head):
                        if fileParts.contains(head.name), form.files[head.name] == nil {
                            let path = directory + "/" + head.name
                            guard FileManager.default.createFile(atPath: path, contents: nil), let sink = FileHandle(forWritingAtPath: path) else {
                                throw StorageFailure(path: path)
                            }
                            form.files[head.name] = UploadedFile(head: head, path: path)
                            current = (head, sink, nil)
                        } else {
                            current = (head, nil, form.fields[head.name] == nil && !fileParts.contains(head.name) ? [] : nil)
                        }
                    case .bodyBytes(let bytes):
                        if let sink = current?.sink { try sink.write(contentsOf: bytes) }
                        if current?.field != nil {
                            current?.field?.append(contentsOf: bytes)
                            guard current?.field?.count ?? 0 <= maxFieldBytes else {
                                throw MultipartForm.Malformed(description: "multipart part '\(current?.head.name.prefix(64) ?? "")' is larger than \(maxFieldBytes) bytes")
                            }
                        }
                    case .partEnded:
                        try current?.sink?.close()
                        if let current, let field = current.field { form.fields[current.head.name] = field }
                        current = nil
                    }
                }
            }
            try parser.finish()
        } catch {
            try? current?.sink?.close()
            throw error
        }
        return form
    }
}
