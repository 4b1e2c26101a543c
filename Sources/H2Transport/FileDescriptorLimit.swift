#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open file descriptors, which bounds how many connections it can hold.
public enum FileDescriptorLimit {
    /// The soft RLIMIT_NOFILE; 1024 (the usual default) if it cannot be read or is unlimited.
    public static var current: Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur != rlim_t.max else { return 1024 }
        return Int(clamping: limit.rlim_cur)
    }
}
