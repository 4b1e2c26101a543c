import Foundation
import NIOConcurrencyHelpers

/// The process groups of the runs in progress, so that stopping the engine stops them too:
/// each run leads a group of its own, which a signal to the engine does not reach.
public final class RunningProcessGroups: Sendable {
    private let groups = NIOLockedValueBox<Set<Int32>>([])

    public init() {}

    func insert(_ pid: Int32) { groups.withLockedValue { _ = $0.insert(pid) } }

    func remove(_ pid: Int32) { groups.withLockedValue { _ = $0.remove(pid) } }

    /// Kills every group still running.
    public func killAll() {
        for pid in groups.withLockedValue({ $0 }) { SupervisedProcess.killGroup(of: pid) }
    }
}

/// How one FaceFusion (or ffmpeg) run ended.
public enum ProcessExit: Sendable, Equatable {
    /// The process exited with this code (FaceFusion: 0 success, 1 processing failure, 2
    /// invalid arguments or a failed pre-check).
    case exited(Int32, logTail: String)
    /// Killed by a signal it did not ask for (OOM killer, an operator).
    case signalled(Int32, logTail: String)
    /// Still running at the job timeout: its whole process group was killed.
    case timedOut(logTail: String)
}

/// Runs a program once (`python facefusion.py headless-run …`, ffmpeg) under a time limit, off
/// every event loop: the output is read on a thread of its own and the process is awaited
/// through Foundation's termination handler.
///
/// Foundation's `Process` starts each child in a process group of its own (its id is the
/// child's pid), so FaceFusion's helpers (ffmpeg, its worker processes) are killed with it.
public struct SupervisedProcess: Sendable {
    public var executable: String
    public var directory: String
    public var timeout: Duration
    public var groups: RunningProcessGroups
    /// Variables set for the run on top of the engine's own environment.
    public var environment: [String: String] = [:]

    public init(executable: String, directory: String, timeout: Duration, groups: RunningProcessGroups) {
        self.executable = executable
        self.groups = groups
        self.directory = directory
        self.timeout = timeout
    }

    /// Runs the program with `arguments`; `onProgress` sees each new tqdm progress reading in
    /// its output, on the reading thread.
    public func run(_ arguments: [String], onProgress: @escaping @Sendable (FaceFusionProgress) -> Void) async throws -> ProcessExit {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, own in own }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let log = NIOLockedValueBox(FaceFusionOutputLog())
        let timedOut = NIOLockedValueBox(false)
        let timer = NIOLockedValueBox<Task<Void, Never>?>(nil)

        return try await withCheckedThrowingContinuation { continuation in
            // Whichever of the two ends last (output closed, process exited) answers.
            let remaining = NIOLockedValueBox(2)
            let finish: @Sendable () -> Void = {
                let last = remaining.withLockedValue { count in
                    count -= 1
                    return count == 0
                }
                guard last else { return }
                timer.withLockedValue { $0?.cancel() }
                let tail = log.withLockedValue { $0.logTail }
                if timedOut.withLockedValue({ $0 }) {
                    continuation.resume(returning: .timedOut(logTail: tail))
                } else if process.terminationReason == .uncaughtSignal {
                    continuation.resume(returning: .signalled(process.terminationStatus, logTail: tail))
                } else {
                    continuation.resume(returning: .exited(process.terminationStatus, logTail: tail))
                }
            }
            let groups = self.groups
            let exited = NIOLockedValueBox(false)
            process.terminationHandler = { process in
                // Helpers left behind would hold the output pipe open (and a GPU) forever.
                Self.killGroup(of: process.processIdentifier)
                exited.withLockedValue { $0 = true }
                groups.remove(process.processIdentifier)
                finish()
            }
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
                return
            }
            groups.insert(process.processIdentifier)
            // A run that ended before it was registered must not stay registered.
            if exited.withLockedValue({ $0 }) { groups.remove(process.processIdentifier) }
            output.fileHandleForWriting.closeFile()
            let reader = Thread {
                let handle = output.fileHandleForReading
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    let reading: FaceFusionProgress? = log.withLockedValue { log in log.append(chunk) ? log.progress : nil }
                    if let reading { onProgress(reading) }
                }
                handle.closeFile()
                finish()
            }
            reader.start()
            let pid = process.processIdentifier
            let deadline = timeout
            timer.withLockedValue {
                $0 = Task.detached {
                    guard (try? await Task.sleep(for: deadline)) != nil, process.isRunning else { return }
                    timedOut.withLockedValue { $0 = true }
                    Self.killGroup(of: pid)
                }
            }
        }
    }

    /// SIGKILL to the process group `pid` leads. Through kill(1) because signals are C calls,
    /// which live only in the C wrappers (docs/architecture.md).
    static func killGroup(of pid: Int32) {
        let kill = Process()
        kill.executableURL = URL(fileURLWithPath: "/bin/kill")
        kill.arguments = ["-KILL", "--", "-\(pid)"]
        kill.standardOutput = FileHandle.nullDevice
        kill.standardError = FileHandle.nullDevice
        try? kill.run()
    }
}
