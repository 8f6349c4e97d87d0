// SystemSupport, the one OS layer: errno and its text, owned descriptors, whole-file reads and
// writes, threads, mountinfo, epoll, eventfd. The only Swift file that calls strerror.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX error number from a failed system call: the one errno type of the project. Module
/// error enums keep their meaning (operation, path) and take the errno's text from here.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// The error number `code` (positive, as `errno` holds it).
    public init(_ code: Int32) { self.rawValue = code }

    /// The calling thread's current `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    public static let noEntry = Errno(rawValue: ENOENT)
    public static let invalidArgument = Errno(rawValue: EINVAL)
    public static let tooBig = Errno(rawValue: E2BIG)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let noMemory = Errno(rawValue: ENOMEM)

    public static let fileTooBig = Errno(rawValue: EFBIG)

    /// The C library's text alone, e.g. "No such file or directory" (strerror(3)).
    public var message: String {
        guard let text = strerror(rawValue) else { return "Unknown error \(rawValue)" }
        return String(cString: text)
    }

    /// The text with the number, e.g. "No such file or directory (errno 2)".
    public var description: String { "\(message) (errno \(rawValue))" }
}

/// Runs a system call returning -1 with errno on failure, retrying on EINTR unless told not to.
@inlinable
public func retryingSyscall<T: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ call: () -> T
) throws(Errno) -> T {
    while true {
        let result = call()
        if result != -1 { return result }
        let error = Errno.current
        if error == .interrupted && retryOnInterrupt { continue }
        throw error
    }
}

/// Turns a C shim's "value or -errno" result into a value or a thrown `Errno`.
@inlinable
public func shimResult(_ value: Int32) throws(Errno) -> Int32 {
    if value < 0 { throw Errno(rawValue: -value) }
    return value
}
