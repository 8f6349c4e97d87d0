// A failed system call with what it was about; reading /proc and /sys is SystemSupport's
// readWholeTextFile.

import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// A system call that failed, with the operation and path it was about.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let subject: String
    public let errno: Int32

    public init(_ operation: String, _ subject: String, errno: Int32) {
        self.operation = operation
        self.subject = subject
        self.errno = errno
    }

    public var description: String { "\(operation) \(subject): \(Errno(errno))" }
}

enum SystemFiles {
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
