// SystemSupport: errno, owned descriptors, epoll, eventfd.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX error number from a failed system call.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

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

    public var description: String {
        guard let text = strerror(rawValue) else { return "errno \(rawValue)" }
        return "\(String(cString: text)) (errno \(rawValue))"
    }
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
