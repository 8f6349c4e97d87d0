// A uid (and gid) of its own for each sandbox's QEMU (docs/security.md 8.2), so a QEMU taken over
// by its guest shares its user with no other process: it cannot signal another pod's QEMU.

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The uids `base ..< base + count`, each one claimed by an exclusive flock on
/// `<directory>/<uid>.lock`. The claiming shim holds the lock while its QEMU runs and releases it
/// when QEMU has ended; a shim that dies releases it with its descriptors (the kernel drops the
/// lock), so a dead shim leaves nothing to clean up. Lock files are never removed: unlinking a
/// lock file another shim has just opened would let two shims claim the same uid.
public struct QEMUUserPool: Equatable, Sendable {
    public var base: UInt32
    public var count: UInt32
    public var directory: String

    public init(base: UInt32, count: UInt32, directory: String) {
        self.base = base
        self.count = count
        self.directory = directory
    }

    /// Claims the lowest free uid; its gid is the same number.
    public func claim() throws(HypervisorError) -> QEMUUserClaim {
        guard base > 0, count > 0, UInt64(base) + UInt64(count) <= UInt64(UInt32.max) else {
            throw .invalidConfig("QEMU uid range \(base)+\(count) is empty, includes root or overflows")
        }
        let parent = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
        if !parent.isEmpty { mkdir(parent, 0o700) }
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw .invalidConfig("QEMU uid lock directory \(directory): \(Errno.current.message)")
        }
        for uid in base..<(base + count) {
            let fd = open("\(directory)/\(uid).lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                throw .invalidConfig("QEMU uid lock \(directory)/\(uid).lock: \(Errno.current.message)")
            }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                return QEMUUserClaim(user: QEMUUser(uid: uid, gid: uid), lockDescriptor: fd)
            }
            close(fd)
        }
        throw .invalidConfig("every QEMU uid of \(base)..<\(base + count) is in use by another sandbox")
    }
}

/// One claimed uid; `release()` (or the end of the process) frees it.
public final class QEMUUserClaim: Sendable {
    public let user: QEMUUser
    private let lockDescriptor: Int32

    init(user: QEMUUser, lockDescriptor: Int32) {
        self.user = user
        self.lockDescriptor = lockDescriptor
    }

    deinit { close(lockDescriptor) }
}
