// Spawning a process with an exact descriptor layout (ks_spawn.c: posix_spawn, so no Swift code
// runs in the child), and the C string arrays exec-style calls take.
import CSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum Spawn {
    /// Spawns `path` with `arguments` (argv, the program name first) and `environment`
    /// ("KEY=value"). Child descriptor i is `descriptors[i]` (nil: /dev/null), at most 16 of them;
    /// every other descriptor is closed. With `newProcessGroup` the child leads a process group
    /// of its own. Signal mask and dispositions are reset to their defaults. Returns the pid.
    public static func process(
        path: String, arguments: [String], environment: [String], descriptors: [Int32?], newProcessGroup: Bool
    ) throws(Errno) -> pid_t {
        var pid: pid_t = 0
        let map = descriptors.map { $0 ?? -1 }
        let rc = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                ks_spawn(path, argv, envp, map, Int32(map.count), newProcessGroup ? 1 : 0, &pid)
            }
        }
        _ = try shimResult(rc)
        return pid
    }
}

/// Calls `body` with NUL-terminated copies of `strings` followed by a NULL (the argv/envp shape),
/// valid only during the call.
public func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) throws -> R) rethrows -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { pointers.forEach { free($0) } }
    return try body(pointers)
}
