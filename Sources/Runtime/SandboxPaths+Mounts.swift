// Host files and directories a container's spec bind-mounts (CRI's /etc/hosts, /etc/resolv.conf,
// /etc/hostname, /dev/termination-log, volumes) reach the guest through the share: each is
// bind-mounted, nodev,nosuid (and read-only when the spec says so), on a name of its own in
//   <shared>/containers/<cid>/mounts/<index>-<base name>
// and the guest's spec bind-mounts that path where the container wants it (docs/kubernetes.md).
// The mount goes through /proc/self/fd of a descriptor, since the guest can rename anything in
// the share while the VM runs; what got mounted is checked (device and inode) before it is
// restricted, and a container's mounts go when its directory is unshared.

import Logging
import Shim
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

extension SandboxPaths {
    /// What a host path shared into the guest is.
    enum SharedKind: Equatable {
        case file, directory
    }

    /// The guest path of a shared host mount's name.
    static func guestMount(_ containerID: String, name: String) -> String {
        PodVM.guestSharedPath + "/containers/" + containerID + "/mounts/" + name
    }

    /// Bind-mounts the host path `source` (symlinks followed, as CRI asks for host paths) into the
    /// container's `mounts/` directory as `name`; returns what it is. Only regular files and
    /// directories can be shared: anything else (sockets, devices, FIFOs) fails with ENOTSUP.
    func shareMount(containerID: String, name: String, source: String, readOnly: Bool) throws(RuntimeError) -> SharedKind {
        guard Identifier.isValid(containerID) else {
            throw .invalidIdentifier(Identifier.problem("container id", containerID))
        }
        guard !name.isEmpty, !name.contains("/" as Character), name != ".", name != ".." else {
            throw .invalidSpec("bad share name \"\(name)\"")
        }
        let where_ = containerDirectory(containerID) + "/mounts/" + name
        do throws(Errno) {
            let origin = try FileDescriptor.open(source, FileDescriptor.pathOnly)
            let originStatus = try origin.status()
            let kind: SharedKind
            switch originStatus.st_mode & S_IFMT {
            case S_IFDIR: kind = .directory
            case S_IFREG: kind = .file
            default: throw Errno(rawValue: ENOTSUP)
            }
            let container = try Self.makeDirectory(containerID, in: try openDirectory(shared + "/containers"))
            let mounts = try Self.makeDirectory("mounts", in: container)
            let target: FileDescriptor
            switch kind {
            case .directory:
                target = try Self.makeDirectory(name, in: mounts)
            case .file:
                unlinkat(mounts.rawValue, name, 0)  // whatever the guest may have planted there
                let fd = try retryingSyscall {
                    openat(mounts.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                }
                target = FileDescriptor(owning: fd)
            }
            _ = try retryingSyscall {
                mount(Self.procPath(origin), Self.procPath(target), "none", UInt(MS_BIND | MS_REC), nil)
            }
            do throws(Errno) {
                try Self.restrictMount(name, in: mounts, expected: originStatus, readOnly: readOnly)
            } catch {
                _ = umount2(Self.procPath(target), Int32(MNT_DETACH))
                throw error
            }
            return kind
        } catch {
            throw .system(operation: "share \(source) as \(where_)", errno: error.rawValue)
        }
    }

    /// Remounts the bind mount at `name` in `directory` nodev,nosuid(,ro). Reopens the name (the
    /// descriptor the mount was made through names what is underneath) and checks that it is the
    /// mounted object before remounting it.
    static func restrictMount(_ name: String, in directory: FileDescriptor, expected: stat, readOnly: Bool) throws(Errno) {
        let fd = try retryingSyscall { openat(directory.rawValue, name, FileDescriptor.pathOnly | O_NOFOLLOW | O_CLOEXEC) }
        let mounted = FileDescriptor(owning: fd)
        let found = try mounted.status()
        guard found.st_dev == expected.st_dev, found.st_ino == expected.st_ino else { throw Errno(rawValue: EXDEV) }
        let flags = MS_REMOUNT | MS_BIND | MS_NODEV | MS_NOSUID | (readOnly ? MS_RDONLY : 0)
        _ = try retryingSyscall { mount("", procPath(mounted), "", UInt(flags), nil) }
    }
}
