// The per-sandbox host directory (docs/shim.md):
//   <sandbox_dir>/<sandbox-id>/            mode 0700
//     shared/                               served to the guest over virtio-fs (tag kataShared)
//       containers/<cid>/rootfs             bind mount of the container's <bundle>/rootfs
//       containers/<cid>/mounts/<i>-<name>  bind mounts of host paths the spec mounts (+Mounts)
//     hvsock                                hybrid vsock socket (debug console on only)
//     netns                                 a warm sandbox's holding network namespace (WarmNetwork)
//     shim-monitor.sock                     the shim's metrics endpoint (in vm-<pid>/ beside it
//                                           when the path is too long for a socket address)
// Removal unmounts everything below the directory first (deepest first, lazily) and never
// crosses into another file system, so a leftover bind mount can never cost a rootfs its files.

import Logging
import Shim
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Paths of one sandbox on the host.
public struct SandboxPaths: Sendable, Equatable {
    public let root: String
    public var shared: String { root + "/shared" }
    public var hybridVsock: String { root + "/hvsock" }
    /// A warm sandbox's holding network namespace for its NIC's tap, until a pod adopts it
    /// (WarmNetwork); a bind mount, so removal unmounts it with the rest.
    public var holdingNamespace: String { root + "/netns" }
    /// The shim's metrics endpoint (HTTP, GET /metrics), beside the hypervisor's sockets: its path
    /// fits in a socket address by the same rule.
    public var monitorSocket: String { vmDirectory + "/shim-monitor.sock" }
    /// The hypervisor's socket directory: the sandbox directory itself when its sockets' paths fit
    /// in a Unix socket address (108 bytes), else a short per-process directory.
    public let vmDirectory: String

    /// The sandbox ID names a directory: it must pass containerd's identifier rule.
    public init(sandboxDirectory: String, sandboxID: String) throws(RuntimeError) {
        guard Identifier.isValid(sandboxID) else { throw .invalidIdentifier(Identifier.problem("sandbox id", sandboxID)) }
        root = sandboxDirectory + "/" + sandboxID
        // QEMU's longest socket name below the directory is "/vhost-vsock.sock".
        vmDirectory = root.utf8.count + 20 < 108 ? root : sandboxDirectory + "/vm-\(getpid())"
    }

    private init(root: String, vmDirectory: String) {
        self.root = root
        self.vmDirectory = vmDirectory
    }

    /// The same sandbox under the name `sandboxID` (a warm sandbox adopted by a pod): the VM
    /// directory moves along when it is the sandbox directory itself.
    func renamed(to sandboxID: String) throws(RuntimeError) -> SandboxPaths {
        guard Identifier.isValid(sandboxID) else { throw .invalidIdentifier(Identifier.problem("sandbox id", sandboxID)) }
        let newRoot = parent + "/" + sandboxID
        return SandboxPaths(root: newRoot, vmDirectory: vmDirectory == root ? newRoot : vmDirectory)
    }

    public func containerDirectory(_ containerID: String) -> String { shared + "/containers/" + containerID }
    public func hostRootfs(_ containerID: String) -> String { containerDirectory(containerID) + "/rootfs" }
    public static func guestRootfs(_ containerID: String) -> String {
        PodVM.guestSharedPath + "/containers/" + containerID + "/rootfs"
    }

    /// Creates the directory tree (the parent too, if missing). The share becomes a mount point
    /// of its own, shared: the FUSE server's thread pivots into it in a mount namespace of its
    /// own (ThreadConfinement.enterDirectory), and what the shim mounts below it later (the next
    /// containers' rootfs) must still propagate there. Removal unmounts it with the rest.
    func create() throws(RuntimeError) {
        for directory in [parent, root, shared] {
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw .system(operation: "mkdir \(directory)", errno: errno)
            }
        }
        if !Self.mountPoints(below: root).contains(shared) {
            guard mount(shared, shared, nil, UInt(MS_BIND), nil) == 0 else {
                throw .system(operation: "bind-mount \(shared) onto itself", errno: errno)
            }
            // Private first: on a host whose / is shared (systemd's default) the bind would join
            // its peer group, and what is mounted in the share would spread to every namespace
            // that receives /'s mounts. Then shared, a peer group of its own.
            guard mount(nil, shared, nil, UInt(MS_PRIVATE), nil) == 0, mount(nil, shared, nil, UInt(MS_SHARED), nil) == 0 else {
                let error = errno
                umount2(shared, Int32(MNT_DETACH))
                throw .system(operation: "make \(shared) a shared mount", errno: error)
            }
        }
        guard mkdir(shared + "/containers", 0o700) == 0 || errno == EEXIST else {
            throw .system(operation: "mkdir \(shared)/containers", errno: errno)
        }
    }

    var parent: String {
        String(root[..<(root.lastIndex(of: "/") ?? root.endIndex)])
    }

    /// Creates `<shared>/containers/<cid>/rootfs` and bind-mounts `source` onto it, nodev,nosuid
    /// (and read-only when asked). The share is guest-writable: an existing name on the way that
    /// is a symlink is refused, and the mount goes through /proc/self/fd of the opened directory.
    func shareRootfs(containerID: String, from source: String, readOnly: Bool) throws(RuntimeError) {
        guard Identifier.isValid(containerID) else {
            throw .invalidIdentifier(Identifier.problem("container id", containerID))
        }
        let target = hostRootfs(containerID)
        let container: FileDescriptor
        let mountPoint: FileDescriptor
        do throws(Errno) {
            container = try Self.makeDirectory(containerID, in: try openDirectory(shared + "/containers"))
            mountPoint = try Self.makeDirectory("rootfs", in: container)
        } catch {
            throw .system(operation: "create \(target) (no symlinks)", errno: error.rawValue)
        }
        guard mount(source, Self.procPath(mountPoint), "none", UInt(MS_BIND | MS_REC), nil) == 0 else {
            let code = errno
            removeTree(containerDirectory(containerID))
            throw .system(operation: "bind-mount \(source) on \(target)", errno: code)
        }
        do throws(Errno) {
            try Self.restrictMount(of: source, at: container, readOnly: readOnly)
        } catch {
            unshareRootfs(containerID: containerID)
            throw .system(operation: "remount \(target) nodev,nosuid\(readOnly ? ",ro" : "")", errno: error.rawValue)
        }
    }

    /// Remounts the bind mount at `container`/rootfs nodev,nosuid(,ro): the guest may write the
    /// rootfs, and image layers may hold device nodes and setuid files.
    private static func restrictMount(of source: String, at container: FileDescriptor, readOnly: Bool) throws(Errno) {
        let expected = try FileDescriptor.open(source, O_RDONLY | O_DIRECTORY).status()
        try restrictMount("rootfs", in: container, expected: expected, readOnly: readOnly)
    }

    /// Unmounts and removes a container's part of the shared directory.
    func unshareRootfs(containerID: String) {
        Self.unmountAll(below: containerDirectory(containerID))
        removeTree(containerDirectory(containerID))
    }

    /// Unmounts everything below the sandbox directory and removes it (and the VM directory).
    func remove(logger: Logger) {
        Self.unmountAll(below: root)
        removeTree(root)
        if vmDirectory != root { removeTree(vmDirectory) }
        var st = stat()
        if lstat(root, &st) == 0 { logger.warning("could not remove \(root) completely") }
    }

    /// Mount points at or below `directory`, deepest first.
    static func mountPoints(below directory: String) -> [String] {
        let points = ((try? MountInfo.current()) ?? []).map(\.mountPoint)
        return points.filter { $0 == directory || $0.hasPrefix(directory + "/") }.sorted { $0.count > $1.count }
    }

    static func unmountAll(below directory: String) {
        for point in mountPoints(below: directory) {
            let noFollow = Int32(UMOUNT_NOFOLLOW)
            if umount2(point, noFollow) != 0 { _ = umount2(point, Int32(MNT_DETACH) | noFollow) }
        }
    }
}
