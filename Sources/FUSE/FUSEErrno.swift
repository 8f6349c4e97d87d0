// The one error type of the FUSE module: a POSIX errno, positive here, negated on the wire.

import Glibc

/// A POSIX error number as a FUSE reply carries it. Every failing operation of the server and of
/// the passthrough file system ends in one of these; the reply header carries `-code`.
public struct FUSEErrno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    /// The calling thread's `errno` after a failed libc call.
    static var current: FUSEErrno { FUSEErrno(errno) }

    public var description: String { "errno \(code) (\(String(cString: strerror(code))))" }

    public static let notPermitted = FUSEErrno(EPERM)
    public static let noEntry = FUSEErrno(ENOENT)
    public static let io = FUSEErrno(EIO)
    public static let badHandle = FUSEErrno(EBADF)
    public static let accessDenied = FUSEErrno(EACCES)
    public static let notDirectory = FUSEErrno(ENOTDIR)
    public static let isDirectory = FUSEErrno(EISDIR)
    public static let invalid = FUSEErrno(EINVAL)
    public static let tooManyFiles = FUSEErrno(ENFILE)
    public static let range = FUSEErrno(ERANGE)
    public static let nameTooLong = FUSEErrno(ENAMETOOLONG)
    public static let notImplemented = FUSEErrno(ENOSYS)
    public static let loop = FUSEErrno(ELOOP)
    public static let notSupported = FUSEErrno(EOPNOTSUPP)
    public static let protocolError = FUSEErrno(EPROTO)
    public static let crossDevice = FUSEErrno(EXDEV)
    public static let noData = FUSEErrno(ENODATA)
    public static let tooBig = FUSEErrno(E2BIG)
    public static let readOnly = FUSEErrno(EROFS)
}

/// Checks a libc return value that signals failure with -1 and `errno`, retrying on EINTR.
@inline(__always)
func check<T: BinaryInteger>(_ call: () -> T) throws(FUSEErrno) -> T {
    while true {
        let rc = call()
        if rc >= 0 { return rc }
        if errno == EINTR { continue }
        throw FUSEErrno.current
    }
}

/// Checks a ks_fuse_* shim return value: the result, or -errno.
@inline(__always)
func checkShim<T: SignedInteger & FixedWidthInteger>(_ call: () -> T) throws(FUSEErrno) -> T {
    while true {
        let rc = call()
        if rc >= 0 { return rc }
        if rc == T(0) - T(EINTR) { continue }
        throw FUSEErrno(Int32(truncatingIfNeeded: T(0) - rc))
    }
}
