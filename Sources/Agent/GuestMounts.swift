// The file systems a guest PID 1 mounts before anything else, and how it finds out what is
// already mounted (the early C constructor may have mounted /proc; the kernel may have mounted
// devtmpfs).

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// One mount(2) call of the boot sequence.
public struct MountSpec: Sendable, Equatable {
    public var source: String
    public var target: String
    public var fstype: String
    public var flags: UInt
    public var data: String
    /// Mode for the target directory if it has to be created.
    public var directoryMode: mode_t

    public init(_ source: String, _ target: String, _ fstype: String, flags: UInt, data: String = "",
                directoryMode: mode_t = 0o755) {
        self.source = source
        self.target = target
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.directoryMode = directoryMode
    }
}

/// Why a boot-time mount failed.
public enum MountError: Error, Equatable, CustomStringConvertible {
    case createDirectory(String, errno: Int32)
    case mount(MountSpec, errno: Int32)
    /// A step of leaving the initial rootfs (GuestRoot).
    case system(String, errno: Int32)

    public var description: String {
        switch self {
        case .system(let step, let errno): "\(step): \(Errno(errno))"
        case .createDirectory(let path, let errno): "mkdir \(path): \(Errno(errno))"
        case .mount(let spec, let errno): "mount \(spec.fstype) on \(spec.target): \(Errno(errno))"
        }
    }
}

public enum GuestMounts {
    static let nosuid = UInt(MS_NOSUID)
    static let nodev = UInt(MS_NODEV)
    static let noexec = UInt(MS_NOEXEC)

    /// In order: later targets live inside earlier ones (/dev/pts in /dev, cgroup in /sys).
    public static let bootSequence: [MountSpec] = [
        MountSpec("proc", "/proc", "proc", flags: nosuid | nodev | noexec, directoryMode: 0o555),
        MountSpec("sysfs", "/sys", "sysfs", flags: nosuid | nodev | noexec, directoryMode: 0o555),
        // No options: devtmpfs is one superblock per kernel, and options would reconfigure it for
        // everyone (on a test host, the host's /dev).
        MountSpec("devtmpfs", "/dev", "devtmpfs", flags: nosuid),
        MountSpec("devpts", "/dev/pts", "devpts", flags: nosuid | noexec, data: "newinstance,ptmxmode=0666,mode=0620"),
        MountSpec("shm", "/dev/shm", "tmpfs", flags: nosuid | nodev, data: "mode=1777", directoryMode: 0o1777),
        MountSpec("tmpfs", "/run", "tmpfs", flags: nosuid | nodev, data: "mode=0755"),
        MountSpec("tmpfs", "/tmp", "tmpfs", flags: nosuid | nodev, data: "mode=1777", directoryMode: 0o1777),
        // nsdelegate: cgroup namespaces become delegation boundaries (as systemd mounts it). Root
        // flags of cgroup2 are global, applied by any mount from the initial cgroup namespace.
        MountSpec("cgroup2", "/sys/fs/cgroup", "cgroup2", flags: nosuid | nodev | noexec, data: "nsdelegate"),
    ]

    /// Symlinks programs expect in /dev that devtmpfs does not create.
    static let devLinks: [(link: String, target: String)] = [
        ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"),
    ]

    /// Mount points listed in a mountinfo file (field 5), with octal escapes (\040) decoded.
    public static func mountPoints(mountinfo: String) -> Set<String> {
        Set(MountInfo.parse(mountinfo).map(\.mountPoint))
    }

    /// Mounts every entry of `specs` whose target is not a mount point yet, creating directories.
    /// Returns the targets it mounted.
    @discardableResult
    public static func mountAll(_ specs: [MountSpec], log: AgentLog) throws(MountError) -> [String] {
        var mounted: [String] = []
        for spec in specs {
            // Re-read each time: mounting /proc makes mountinfo readable in the first place.
            let existing = Set(((try? MountInfo.current()) ?? []).map(\.mountPoint))
            if existing.contains(spec.target) {
                log.debug("\(spec.target) already mounted")
                continue
            }
            if mkdir(spec.target, spec.directoryMode) != 0 && errno != EEXIST {
                throw .createDirectory(spec.target, errno: errno)
            }
            let rc = spec.data.isEmpty
                ? mount(spec.source, spec.target, spec.fstype, spec.flags, nil)
                : spec.data.withCString { mount(spec.source, spec.target, spec.fstype, spec.flags, $0) }
            guard rc == 0 else { throw .mount(spec, errno: errno) }
            log.info("mounted \(spec.fstype) on \(spec.target)")
            mounted.append(spec.target)
        }
        for (link, target) in devLinks where symlink(target, link) != 0 && errno != EEXIST {
            log.warning("symlink \(link) -> \(target): \(Errno(errno))")
        }
        return mounted
    }
}
