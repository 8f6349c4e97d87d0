// The shim's process-wide confinement (docs/security.md, "The shim's process-wide filter" and
// "Capabilities"): the daemon and the delete action load a seccomp denylist on every thread and
// give up the capabilities no shim uses. Both carry over to every child, QEMU included (the
// bounding set is what a root child gets back at exec).

import SystemSupport

enum ShimConfinement {
    /// The capabilities the shim keeps, each for something it does.
    static let keptCapabilities: [ProcessConfinement.Capability] = [
        // The FUSE server creates, chowns and sets modes of files on behalf of any guest uid
        // (fchownat, mknodat of devices and FIFOs, utimensat and fchmod on others' files, setgid
        // bits kept on write, linkat with AT_EMPTY_PATH); the sandbox directory and the bind
        // mounts into the share are created and removed as root over others' files.
        .chown, .dacOverride, .dacReadSearch, .fowner, .fsetid, .mknod,
        // QEMU's -runas (setgroups, setgid, setuid), which QEMU inherits through the bounding set.
        .setuid, .setgid,
        // Signalling QEMU and its guard once QEMU runs as its own user, on stop and on cleanup.
        .kill,
        // Taps, links, addresses and tc filters in the pod's network namespace (netlink, TUNSETIFF).
        .netAdmin,
        // mount and umount2 (the rootfs, the share's bind mounts), setns into the pod's network
        // namespace, and seccomp filters loaded without relying on no_new_privs.
        .sysAdmin,
    ]

    /// Loads the filter on every thread, then drops the capabilities on the calling thread
    /// (CAP_SYS_ADMIN is still held for the first). Capabilities are per thread, and Linux has no
    /// call that changes those of other threads: `start` drops them before it spawns the daemon,
    /// so the daemon's threads are born with the reduced sets; this call only repeats the drop.
    static func apply() throws(Errno) {
        try ProcessConfinement.installFilter()
        try limitCapabilities()
    }

    static func limitCapabilities() throws(Errno) {
        try ProcessConfinement.limitCapabilities(to: keptCapabilities)
    }
}
