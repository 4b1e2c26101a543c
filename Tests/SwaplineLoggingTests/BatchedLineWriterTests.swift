import Foundation
import Testing
@testable import SwaplineLogging

/// `BatchedLineWriter` writes every line whole and in order, from any number of threads, and
/// drops (and counts) what a descriptor that takes nothing would pile up.
@Suite struct BatchedLineWriterTests {
    /// The bytes written to a pipe by `body`, after a flush.
    private func written(maxPendingBytes: Int = BatchedLineWriter.maxPendingBytes, _ body: (BatchedLineWriter) -> Void) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("batched-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: file.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: file) }
        let handle = try FileHandle(forWritingTo: file)
        let writer = BatchedLineWriter(handle: handle, maxPendingBytes: maxPendingBytes)
        body(writer)
        writer.flush()
        try handle.close()
        return try String(contentsOf: file, encoding: .utf8)
    }

    @Test func linesFromManyThreadsArriveWholeAndInOrderPerThread() throws {
        let text = try written { writer in
            DispatchQueue.concurrentPerform(iterations: 8) { thread in
                for number in 0..<500 { writer.write("thread \(thread) line \(number) \(String(repeating: "x", count: 40))\n") }
            }
        }
        let lines = text.split(separator: "\n")
        #expect(lines.count == 8 * 500)
        for thread in 0..<8 {
            let numbers = lines.filter { $0.hasPrefix("thread \(thread) ") }.map { Int($0.split(separator: " ")[3])! }
            #expect(numbers == Array(0..<500))
        }
        #expect(lines.allSatisfy { $0.hasSuffix(String(repeating: "x", count: 40)) })
    }

    @Test func whatDoesNotFitIsDroppedAndCounted() throws {
        let text = try written(maxPendingBytes: 10) { writer in
            writer.write("12345\n")
            writer.write("this line is too long\n")
        }
        #expect(text == "12345\n1 log lines dropped: the log output did not keep up\n")
    }
}
