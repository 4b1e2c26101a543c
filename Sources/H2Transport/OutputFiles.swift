import Foundation
import NIOCore
import NIOPosix
import RPCCore

/// Files served read-only from a directory (`swapline serve`'s local result storage and
/// `swapline engine`'s outputs, both at `/outputs/`), and the threads that read them.
///
/// Files are streamed in `chunkSize` pieces (never whole in memory), read on `threadPool`
/// (never on an event loop; its few threads also bound the reads running at once), and only
/// files whose real path (every symlink resolved, checked on the opened descriptor, so a link
/// swapped in meanwhile changes nothing) lies inside the directory are served.
public struct OutputFiles: Sendable {
    public static let chunkSize = 64 * 1024

    public let directory: String
    public let threadPool: NIOThreadPool

    /// `threadPool` must be started; its owner shuts it down after the server.
    public init(directory: String, threadPool: NIOThreadPool) {
        self.directory = directory
        self.threadPool = threadPool
    }

    /// A regular file opened for reading, and its size.
    public struct OpenedFile: Sendable {
        public let handle: FileHandle
        public let size: Int
    }

    /// Opens `components` under the directory: `nil` when it does not exist, is not a regular
    /// file or resolves outside the directory. Blocking: call on `threadPool`.
    public func open(_ components: [String]) -> OpenedFile? {
        let root = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        let path = ([directory] + components).joined(separator: "/")
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        guard let real = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(handle.fileDescriptor)"),
            real.hasPrefix(root.hasSuffix("/") ? root : root + "/"),
            let attributes = try? FileManager.default.attributesOfItem(atPath: real),
            attributes[.type] as? FileAttributeType == .typeRegular,
            let size = (attributes[.size] as? NSNumber)?.intValue
        else {
            try? handle.close()
            return nil
        }
        return OpenedFile(handle: handle, size: size)
    }

    /// Closes `file` on the pool.
    public func close(_ file: OpenedFile) {
        threadPool.submit { _ in try? file.handle.close() }
    }
}

/// Streams one opened output file into a response: the next piece is read (on the pool) while
/// the previous one is written, and written only once the writer has drained the one before,
/// so a client that reads slowly or not at all holds at most two pieces in memory. Lives on
/// the writer's event loop.
public final class OutputFileSender {
    private let file: OutputFiles.OpenedFile
    private let files: OutputFiles
    private let writer: any HTTPStreamWriter
    private var sent = 0
    /// A piece read while the previous one is still queued in the writer.
    private var waitingPiece: ByteBuffer?
    private var readInFlight = false
    private var finished = false

    public init(file: OutputFiles.OpenedFile, files: OutputFiles, writer: any HTTPStreamWriter) {
        self.file = file
        self.files = files
        self.writer = writer
    }

    /// Writes the head (200, `contentType`, the file's length, and `nosniff`: a browser must not
    /// run a served file as anything but its own type), then the file.
    public func start(contentType: String) {
        writer.writeHead(
            status: 200,
            headers: [
                HeaderField("content-type", contentType), HeaderField("content-length", String(file.size)),
                HeaderField("x-content-type-options", "nosniff"),
            ],
            endStream: false)
        guard file.size > 0 else {
            writer.writeEnd(trailers: [])
            return finish()
        }
        readNextPiece()
    }

    /// The writer sent what was queued.
    public func drained() {
        guard let piece = waitingPiece else { return }
        waitingPiece = nil
        write(piece)
    }

    /// The exchange is over (the client left): stop reading and close the file.
    public func cancel() { finish() }

    private func readNextPiece() {
        let handle = file.handle
        let count = min(OutputFiles.chunkSize, file.size - sent)
        readInFlight = true
        files.threadPool.runIfActive(eventLoop: writer.eventLoop) { try handle.read(upToCount: count) ?? Data() }
            .assumeIsolated().whenComplete { [self] result in
                readInFlight = false
                guard !finished else { return closeFile() }
                guard case .success(let data) = result, !data.isEmpty else {
                    // The file shrank or could not be read: the promised content-length cannot be met.
                    writer.reset()
                    return finish()
                }
                let piece = ByteBuffer(bytes: data)
                if writer.queuedBodyBytes == 0 { write(piece) } else { waitingPiece = piece }
            }
    }

    private func write(_ piece: ByteBuffer) {
        sent += piece.readableBytes
        writer.writeBody(piece)
        if sent >= file.size {
            writer.writeEnd(trailers: [])
            finish()
        } else {
            readNextPiece()
        }
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        waitingPiece = nil
        if !readInFlight { closeFile() }
    }

    private func closeFile() {
        files.close(file)
    }
}
