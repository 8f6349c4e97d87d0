// The FUSE module's errors are SystemSupport's Errno: positive here, negated on the wire.

import Glibc
import SystemSupport

/// A POSIX error number as a FUSE reply carries it. Every failing operation of the server and of
/// the passthrough file system ends in one of these; the reply header carries `-code`.
public typealias FUSEErrno = Errno

extension Errno {
    /// The positive error number a FUSE reply negates.
    var code: Int32 { rawValue }

    static let notPermitted = Errno(EPERM)
    static let io = Errno(EIO)
    static let badHandle = Errno(EBADF)
    static let accessDenied = Errno(EACCES)
    static let notDirectory = Errno(ENOTDIR)
    static let isDirectory = Errno(EISDIR)
    static let invalid = Errno(EINVAL)
    static let tooManyFiles = Errno(ENFILE)
    static let range = Errno(ERANGE)
    static let nameTooLong = Errno(ENAMETOOLONG)
    static let notImplemented = Errno(ENOSYS)
    static let loop = Errno(ELOOP)
    static let notSupported = Errno(EOPNOTSUPP)
    static let protocolError = Errno(EPROTO)
    static let crossDevice = Errno(EXDEV)
    static let noData = Errno(ENODATA)
    static let readOnly = Errno(EROFS)
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
