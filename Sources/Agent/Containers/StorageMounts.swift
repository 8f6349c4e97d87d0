// Storages (CreateSandbox, CreateContainer): each is mounted at its guest mount point, which is
// created first; they are unmounted in reverse order on DestroySandbox / RemoveContainer.
// Drivers: "virtio-fs" (source = the tag, fstype virtiofs), "bind" (MS_BIND of a guest path),
// anything else mounts `source` with `fstype` as given (tmpfs, a block device ...).
import AgentAPI
import Glibc

enum StorageMounts {
    /// Mounts every storage in order; on failure unmounts what it mounted and throws.
    static func mountAll(_ storages: [Kata_Agent_V1_Storage], field: String) throws(AgentError) -> [String] {
        var mounted: [String] = []
        for (i, s) in storages.enumerated() {
            do {
                try mount(s, field: "\(field)[\(i)]")
                mounted.append(s.mountPoint)
            } catch {
                unmountAll(mounted)
                throw error
            }
        }
        return mounted
    }

    /// Unmounts in reverse order (lazily: a busy mount point is detached, not left behind).
    static func unmountAll(_ mountPoints: [String]) {
        for path in mountPoints.reversed() {
            _ = umount2(path, Int32(MNT_DETACH))
        }
    }

    static func mount(_ s: Kata_Agent_V1_Storage, field: String) throws(AgentError) {
        let target = s.mountPoint
        guard target.hasPrefix("/"), !target.split(separator: "/").contains(".."), !target.utf8.contains(0) else {
            throw .invalidRequest(field: "\(field).mount_point", reason: "must be an absolute path without '..', got \"\(target)\"")
        }
        guard !s.source.isEmpty else { throw .invalidRequest(field: "\(field).source", reason: "is empty") }
        var (flags, data) = parse(s.options)
        var fstype = s.fstype
        switch s.driver {
        case "virtio-fs", "virtiofs":
            if fstype.isEmpty { fstype = "virtiofs" }
        case "bind":
            flags |= UInt(MS_BIND)
        default:
            guard !fstype.isEmpty else {
                throw .invalidRequest(field: "\(field).fstype", reason: "is empty for driver \"\(s.driver)\"")
            }
        }
        try makeDirectories(target)
        let dataText = data.joined(separator: ",")
        let rc = Glibc.mount(s.source, target, fstype.isEmpty ? nil : fstype, flags, dataText.isEmpty ? nil : dataText)
        guard rc == 0 else {
            throw .system(operation: "mount \(s.source) (\(fstype.isEmpty ? s.driver : fstype)) on \(target)", errno: errno)
        }
        // A read-only bind needs a second, remounting call.
        if flags & UInt(MS_BIND) != 0 && flags & UInt(MS_RDONLY) != 0 {
            _ = Glibc.mount(nil, target, nil, UInt(MS_BIND | MS_REMOUNT | MS_RDONLY), nil)
        }
    }

    /// Mount flags from the usual option words; the rest is file-system data.
    static func parse(_ options: [String]) -> (UInt, [String]) {
        let table: [String: Int] = [
            "ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "sync": MS_SYNCHRONOUS,
            "noatime": MS_NOATIME, "relatime": MS_RELATIME, "bind": MS_BIND, "rbind": MS_BIND | MS_REC,
        ]
        var flags: UInt = 0
        var data: [String] = []
        for o in options {
            if let f = table[o] { flags |= UInt(f) } else if o != "rw" && o != "defaults" { data.append(o) }
        }
        return (flags, data)
    }

    static func makeDirectories(_ path: String) throws(AgentError) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw .system(operation: "mkdir \(current)", errno: errno)
            }
        }
    }
}
