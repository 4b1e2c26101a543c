import Foundation
import SwaplineClient
import SwaplineConsole
import SwaplineMessages

/// How `watch` and `create --watch` follow a task: a line redrawn in place on a terminal, one
/// line per event through a pipe, one JSON object per event with `--json`; then the result,
/// and the exit code of how the task ended.
struct TaskWatch {
    let options: ClientOptions

    func follow(_ taskID: String, client: SwaplineClient) async throws {
        let events = client.watchTask(id: taskID)
        let last: Swapline_V1_Task?
        if options.json {
            last = try await forEachTask(events) { options.printJSON(.object(LegacyJSON.task($0))) }
        } else if isatty(STDOUT_FILENO) == 1 {
            last = try await followOnTerminal(events)
        } else {
            last = try await forEachTask(events) { print(ProgressLine.plain($0)) }
        }
        guard let last, ProgressLine.isFinished(last.status) else {
            throw SwaplineClientError(code: .unavailable, message: "the watch of \(taskID) ended before the task did")
        }
        if !options.json { print(TaskText.described(last), terminator: "") }
        switch last.status {
        case .completed: return
        case .cancelled: throw ClientExit.taskCancelled
        default: throw ClientExit.taskFailed
        }
    }

    /// Calls `body` with each event's task, flushed at once so a reader sees it as it happens;
    /// returns the last one.
    private func forEachTask(
        _ events: GRPCResponseStream<Swapline_V1_TaskEvent>, _ body: (Swapline_V1_Task) async -> Void
    ) async throws -> Swapline_V1_Task? {
        var last: Swapline_V1_Task?
        for try await event in events {
            guard let task = event.task else { continue }
            await body(task)
            fflush(nil)
            last = task
        }
        return last
    }

    /// Redraws the progress line on each event and once a second (the elapsed time moves on
    /// while nothing happens); the final state stays on screen, followed by a newline.
    private func followOnTerminal(_ events: GRPCResponseStream<Swapline_V1_TaskEvent>) async throws -> Swapline_V1_Task? {
        let line = TerminalProgressLine()
        // Ctrl-C ends the line first, so the shell's prompt does not land on the bar.
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler {
            FileHandle.standardOutput.write(Data("\n".utf8))
            exit(130)
        }
        interrupt.resume()
        defer { interrupt.cancel() }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                await line.redraw()
            }
        }
        defer { ticker.cancel() }
        do {
            let last = try await forEachTask(events) { await line.show($0) }
            await line.finish(last)
            return last
        } catch {
            await line.finish(nil)
            throw error
        }
    }
}

/// The one line `watch` keeps on a terminal. An actor, as events and the ticker both draw.
private actor TerminalProgressLine {
    private var task: Swapline_V1_Task?
    private var shown = ""
    /// Set by `finish`: a tick that comes later must not draw below the ended line.
    private var ended = false

    func show(_ task: Swapline_V1_Task) {
        self.task = task
        redraw()
    }

    /// Draws the current task, unless the line would not change (no needless writes, no flicker).
    func redraw() {
        guard let task, !ended else { return }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let text = ProgressLine.bar(task, elapsedMilliseconds: ProgressLine.elapsedMilliseconds(task, nowMilliseconds: now))
        guard text != shown else { return }
        shown = text
        print(ProgressLine.redraw(text), terminator: "")
        fflush(nil)
    }

    /// Draws `last` (the final state) and ends the line, so what follows starts on its own.
    func finish(_ last: Swapline_V1_Task?) {
        if let last { show(last) }
        ended = true
        if !shown.isEmpty { print("") }
    }
}
