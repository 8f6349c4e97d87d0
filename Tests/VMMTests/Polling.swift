#if canImport(Glibc)
import Glibc
#endif

/// Polls `condition` every millisecond for up to 2 s: for what a device thread does after the
/// test's own thread moved on.
func waitUntil(_ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<2000 {
        if try condition() { return true }
        usleep(1000)
    }
    return try condition()
}
