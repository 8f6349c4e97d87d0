// pivot_root refuses to move the initial root mount (rootfs: the initramfs), which has no
// parent. Containers pivot into their rootfs, so PID 1 running from an initramfs first stacks a
// recursive bind of / on top of it and chroots into that (what switch_root does, without a copy):
// from then on the root mount has a parent, and every container's pivot_root works.

import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

enum GuestRoot {
    static let bindPoint = "/.kata-root"

    /// Whether / is the initial rootfs (per /proc/self/mountinfo).
    static func isInitialRootfs() -> Bool {
        guard let mounts = try? MountInfo.current() else { return false }
        return mounts.contains { $0.mountPoint == "/" && $0.fileSystemType == "rootfs" }
    }

    /// As PID 1 on rootfs: bind / recursively onto a directory, move that bind onto /, chroot.
    static func leaveInitialRootfs(log: AgentLog) throws(MountError) {
        guard isInitialRootfs() else { return }
        if mkdir(bindPoint, 0o700) != 0 && errno != EEXIST {
            throw .system("mkdir \(bindPoint)", errno: errno)
        }
        guard mount("/", bindPoint, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
            throw .system("bind / on \(bindPoint)", errno: errno)
        }
        guard chdir(bindPoint) == 0 else { throw .system("chdir \(bindPoint)", errno: errno) }
        guard mount(".", "/", nil, UInt(MS_MOVE), nil) == 0 else { throw .system("move \(bindPoint) to /", errno: errno) }
        guard chroot(".") == 0, chdir("/") == 0 else { throw .system("chroot into the bound root", errno: errno) }
        log.info("root is now a bind mount of the initramfs (pivot_root works for containers)")
    }
}
