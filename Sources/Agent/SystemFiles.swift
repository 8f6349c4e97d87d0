// Reading small kernel-provided text files (/proc, /sys) without Foundation.

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

    public var description: String { "\(operation) \(subject): \(errnoText(errno))" }
}

/// strerror text with the number, e.g. "No such file or directory (errno 2)".
func errnoText(_ code: Int32) -> String {
    let text = strerror(code).map { String(cString: $0) } ?? "unknown error"
    return "\(text) (errno \(code))"
}

enum SystemFiles {
    /// Files under /proc report size 0, so read until EOF; `limit` bounds what a broken or hostile
    /// file system can make us allocate.
    static func readText(_ path: String, limit: Int = 1 << 20) throws(SystemCallError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError("open", path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemCallError("read", path, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<min(n, limit - bytes.count)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
