import CLibFuzzer

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Runs libFuzzer with the command line's arguments, calling `test` with each input, and
/// exits with libFuzzer's status.
///
/// A fuzz target calls this from its top-level code instead of defining
/// `LLVMFuzzerTestOneInput` for libFuzzer's `main`: SwiftPM gives every executable a `main` of
/// its own, which would win over libFuzzer's. libFuzzer calls back on the calling thread, the
/// main one.
@MainActor
public func runFuzzer(_ test: @escaping @MainActor ([UInt8]) -> Void) -> Never {
    currentTest = test
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
        MainActor.assumeIsolated { currentTest?(bytes) }
        return 0
    }
    exit(status)
}

/// The input handler; a C callback cannot capture it.
@MainActor private var currentTest: (([UInt8]) -> Void)?
