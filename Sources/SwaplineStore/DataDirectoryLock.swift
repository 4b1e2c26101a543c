#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SwaplineCore

/// Exclusive use of a data directory by one server: an advisory `flock` on `swapline.lock`
/// inside it, which the kernel releases when the process ends, however it ends (SIGKILL
/// included), so a crashed server never leaves a stale lock behind.
///
/// SQLite would let a second process open the same database, and two schedulers each holding
/// their own queue in memory would hand out the same task twice; the lock refuses that.
final class DataDirectoryLock: Sendable {
    static let fileName = "swapline.lock"

    let path: String
    private let descriptor: Int32

    /// Creates `directory` when missing and locks it; the lock file records our pid so a
    /// refused process can say who holds the directory.
    init(directory: String) throws(TaskStoreOpenError) {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw TaskStoreOpenError(.inaccessible, path: directory, reason: "cannot create the data directory: \(Self.lastError())")
        }
        path = directory + "/" + Self.fileName
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw TaskStoreOpenError(.inaccessible, path: path, reason: "cannot open the lock file: \(Self.lastError())")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = busy ? "the data directory is in use by another swapline server\(Self.holder(descriptor))" : "cannot lock the data directory: \(Self.lastError())"
            close(descriptor)
            throw TaskStoreOpenError(busy ? .inUse : .inaccessible, path: directory, reason: reason)
        }
        self.descriptor = descriptor
        let pid = Array("\(getpid())\n".utf8)
        // Only informative: a lock file we cannot annotate still locks.
        if ftruncate(descriptor, 0) == 0 { _ = pwrite(descriptor, pid, pid.count, 0) }
    }

    deinit {
        // Closing the descriptor releases the lock.
        close(descriptor)
    }

    /// " (pid N)" from the lock file of the process holding it, when it wrote one.
    private static func holder(_ descriptor: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        guard count > 0 else { return "" }
        let digits = String(decoding: bytes.prefix(count).filter { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }, as: UTF8.self)
        return Int32(digits).map { " (pid \($0))" } ?? ""
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}
