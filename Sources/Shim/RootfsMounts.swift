// containerd's rootfs mounts (Create's `rootfs`: type, source, options) mounted in order onto
// `<bundle>/rootfs`, and taken off again by Delete and by the `delete` action.

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A mount as containerd describes it (containerd.types.Mount).
public struct RootfsMount: Equatable, Sendable {
    public var type: String
    public var source: String
    public var options: [String]

    public init(type: String, source: String, options: [String]) {
        self.type = type
        self.source = source
        self.options = options
    }
}

/// A failed mount operation.
public enum RootfsMountError: Error, Equatable, CustomStringConvertible {
    case mount(type: String, source: String, target: String, errno: Int32)
    case remountReadOnly(target: String, errno: Int32)
    case unmount(target: String, errno: Int32)
    case dataTooLong(type: String, length: Int)

    public var description: String {
        switch self {
        case .mount(let type, let source, let target, let errno):
            "mount \(type) \(source) on \(target): \(Errno(errno))"
        case .remountReadOnly(let target, let errno): "remount \(target) read-only: \(Errno(errno))"
        case .unmount(let target, let errno): "unmount \(target): \(Errno(errno))"
        case .dataTooLong(let type, let length):
            "\(type) mount options are \(length) bytes, more than a page (4096)"
        }
    }
}

extension RootfsMount {
    /// mount(2) flags and the leftover data string, parsed from fstab-style options.
    var flagsAndData: (flags: UInt, data: String) {
        let table: [String: (clear: Bool, flag: UInt)] = [
            "ro": (false, UInt(MS_RDONLY)), "rw": (true, UInt(MS_RDONLY)),
            "nosuid": (false, UInt(MS_NOSUID)), "suid": (true, UInt(MS_NOSUID)),
            "nodev": (false, UInt(MS_NODEV)), "dev": (true, UInt(MS_NODEV)),
            "noexec": (false, UInt(MS_NOEXEC)), "exec": (true, UInt(MS_NOEXEC)),
            "sync": (false, UInt(MS_SYNCHRONOUS)), "async": (true, UInt(MS_SYNCHRONOUS)),
            "noatime": (false, UInt(MS_NOATIME)), "atime": (true, UInt(MS_NOATIME)),
            "nodiratime": (false, UInt(MS_NODIRATIME)), "relatime": (false, UInt(MS_RELATIME)),
            "strictatime": (false, UInt(MS_STRICTATIME)),
            "bind": (false, UInt(MS_BIND)), "rbind": (false, UInt(MS_BIND | MS_REC)),
            "remount": (false, UInt(MS_REMOUNT)), "defaults": (false, 0),
        ]
        var flags: UInt = 0
        var data: [String] = []
        for option in options {
            if let entry = table[option] {
                if entry.clear { flags &= ~entry.flag } else { flags |= entry.flag }
            } else {
                data.append(option)
            }
        }
        if type == "bind" { flags |= UInt(MS_BIND) }
        return (flags, data.joined(separator: ","))
    }

    /// Mounts onto `target`.
    func mount(on target: String) throws(RootfsMountError) {
        let (flags, data) = flagsAndData
        guard data.utf8.count < 4096 else { throw .dataTooLong(type: type, length: data.utf8.count) }
        let isBind = flags & UInt(MS_BIND) != 0
        let fsType = isBind ? "none" : type
        let firstFlags = isBind ? flags & ~UInt(MS_RDONLY) : flags
        guard Glibc.mount(source, target, fsType, firstFlags, data.isEmpty ? nil : data) == 0
        else { throw .mount(type: type, source: source, target: target, errno: errno) }
        // A bind mount ignores MS_RDONLY on creation; it takes a remount.
        if isBind && flags & UInt(MS_RDONLY) != 0 {
            let remountFlags = UInt(MS_REMOUNT | MS_BIND | MS_RDONLY) | (flags & UInt(MS_REC))
            guard Glibc.mount("", target, "", remountFlags, nil) == 0 else {
                let code = errno
                umount2(target, Int32(MNT_DETACH))
                throw .remountReadOnly(target: target, errno: code)
            }
        }
    }
}

/// The mounts of a container's rootfs.
public enum RootfsMounts {
    /// Mounts `mounts` in order onto `target`; on failure, takes off what it mounted.
    public static func mount(_ mounts: [RootfsMount], on target: String) throws(RootfsMountError) {
        var done = 0
        do {
            for spec in mounts {
                try spec.mount(on: target)
                done += 1
            }
        } catch {
            for _ in 0..<done { umount2(target, Int32(MNT_DETACH)) }
            throw error
        }
    }

    /// Takes every mount off `target` (stacked mounts one by one). Succeeds when nothing is mounted
    /// there or `target` does not exist, so it can run any number of times.
    public static func unmountAll(_ target: String) throws(RootfsMountError) {
        for _ in 0..<64 {
            if umount2(target, Int32(MNT_DETACH)) != 0 {
                switch errno {
                case EINVAL, ENOENT, ENOTDIR: return
                case let code: throw .unmount(target: target, errno: code)
                }
            }
        }
    }

    /// Whether something is mounted exactly at `path` (from /proc/self/mountinfo).
    public static func isMountPoint(_ path: String) -> Bool {
        guard let mounts = try? MountInfo.current() else { return false }
        return mounts.contains { $0.mountPoint == path }
    }
}
