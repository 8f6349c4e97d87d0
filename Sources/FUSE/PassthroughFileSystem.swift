// A FUSE file system that passes every operation through to one host directory, confined to it.

import CHost
import Glibc
import SystemSupport
import Synchronization

/// Who asks: the uid/gid/pid of the guest process, from fuse_in_header.
public struct FUSECaller: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32

    public init(uid: UInt32, gid: UInt32, pid: UInt32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }
}

public struct PassthroughConfiguration: Sendable {
    /// The host directory the guest sees as its root (the sandbox's shared directory).
    public var root: String
    public var timeouts: FUSECacheTimeouts
    /// Most inodes plus open files held at once; beyond it lookups and opens fail with ENFILE.
    /// nil: half of this process's RLIMIT_NOFILE at start, so a guest cannot starve the rest of the
    /// process of descriptors (raise the limit in main to give the guest more).
    public var maxOpenFiles: Int?
    /// Whether MKNOD may create character and block devices other than the 0:0 overlay whiteout.
    public var allowDeviceNodes: Bool
    /// Refuse every change (EROFS): writes, creations, removals, attribute and xattr changes,
    /// opens for writing or truncation.
    public var readOnly: Bool

    public init(root: String, timeouts: FUSECacheTimeouts = FUSECacheTimeouts(),
                maxOpenFiles: Int? = nil, allowDeviceNodes: Bool = false, readOnly: Bool = false) {
        self.root = root
        self.readOnly = readOnly
        self.timeouts = timeouts
        self.maxOpenFiles = maxOpenFiles
        self.allowDeviceNodes = allowDeviceNodes
    }
}

/// Confinement rules (docs/virtio-fs.md): every inode is an O_PATH fd reached by resolving ONE
/// validated name below its parent's fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS); symlinks are never followed; mounts of procfs/sysfs inside the share are
/// refused; real opens go through /proc/self/fd only for regular files and directories.
public final class PassthroughFileSystem: Sendable {
    let configuration: PassthroughConfiguration
    /// Inodes and open files, guarded by this mutex. Syscalls run outside it on retained objects.
    let table: Mutex<InodeTable>
    /// O_PATH descriptor of /proc/self/fd, for turning an O_PATH inode into a real open file.
    let procSelfFD: Int32
    /// Whether created files get the caller's uid/gid (only root may chown).
    let setsOwner: Bool

    static let lookupResolve = ks_fuse_resolve_beneath | ks_fuse_resolve_no_symlinks | ks_fuse_resolve_no_magiclinks

    public init(_ configuration: PassthroughConfiguration) throws(FUSEErrno) {
        self.configuration = configuration
        let rootFD = try check { Glibc.open(configuration.root, FileDescriptor.pathOnly | O_DIRECTORY | O_CLOEXEC) }
        let (root, _) = try Self.inode(owning: rootFD)
        procSelfFD = try check { Glibc.open("/proc/self/fd", FileDescriptor.pathOnly | O_DIRECTORY | O_CLOEXEC) }
        table = Mutex(InodeTable(root: root, limit: configuration.maxOpenFiles ?? Self.defaultOpenFileLimit()))
        setsOwner = geteuid() == 0
    }

    deinit { close(procSelfFD) }

    /// Re-opens the root as "/" on a thread that has just pivoted into the share
    /// (ThreadConfinement.enterDirectory): a descriptor opened before belongs to the mount
    /// namespace the thread left, where ".." and absolute names still lead to the host. Only
    /// before the first request (no inode but the root, no open file), and only if "/" is the
    /// same directory.
    public func reopenRootAfterPivot() throws(FUSEErrno) {
        let fd = try check { Glibc.open("/", FileDescriptor.pathOnly | O_DIRECTORY | O_CLOEXEC) }
        let (root, _) = try Self.inode(owning: fd)  // closes fd when unused
        let replaced = table.withLock { table -> Bool in
            guard table.inodeCount == 0, table.openFileCount == 0, table.root.key == root.key else { return false }
            table.root = root
            return true
        }
        guard replaced else { throw .invalid }
    }

    static func defaultOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        return max(64, Int(clamping: limit.rlim_cur / 2))
    }

    // MARK: - counts (tests and metrics)

    public var inodeCount: Int { table.withLock { $0.inodeCount } }
    public var openFileCount: Int { table.withLock { $0.openFileCount } }

    // MARK: - inode helpers

    func inode(_ nodeID: UInt64) throws(FUSEErrno) -> Inode {
        guard let inode = table.withLock({ $0.inode(nodeID) }) else { throw FUSEErrno(ESTALE) }
        return inode
    }

    func directory(_ nodeID: UInt64) throws(FUSEErrno) -> Inode {
        let inode = try inode(nodeID)
        guard inode.isDirectory else { throw .notDirectory }
        return inode
    }

    func file(_ fh: UInt64) throws(FUSEErrno) -> OpenFile {
        guard let file = table.withLock({ $0.file(fh) }) else { throw .badHandle }
        return file
    }

    static func stat(_ fd: Int32) throws(FUSEErrno) -> stat {
        var st = Glibc.stat()
        _ = try check { fstatat(fd, "", &st, ks_fuse_at_empty_path | AT_SYMLINK_NOFOLLOW) }
        return st
    }

    /// An inode for the O_PATH descriptor `fd`, which it takes (closed here if fstat fails), and
    /// the descriptor's attributes.
    static func inode(owning fd: Int32) throws(FUSEErrno) -> (Inode, stat) {
        let st: stat
        do throws(FUSEErrno) {
            st = try stat(fd)
        } catch {
            close(fd)
            throw error
        }
        return (Inode(fd: fd, key: InodeKey(st), type: st.st_mode & S_IFMT), st)
    }

    /// The name of `inode` under /proc/self/fd, for calls that must follow it to the object.
    static func procName(_ inode: Inode) -> String { String(inode.fd) }

    /// Resolves one name below `parent` without following anything, and refuses crossing into a
    /// procfs or sysfs mount (magic links, process memory).
    func resolve(_ name: FUSEName, in parent: Inode) throws(FUSEErrno) -> (Inode, stat) {
        guard parent.isDirectory else { throw .notDirectory }
        let fd = try checkShim {
            ks_fuse_openat2(parent.fd, name.cString, UInt64(FileDescriptor.pathOnly | O_NOFOLLOW | O_CLOEXEC), 0,
                            Self.lookupResolve)
        }
        let (inode, st) = try Self.inode(owning: fd)
        if inode.key.device != parent.key.device {
            let type = try checkShim { ks_fuse_fstatfs_type(fd) }
            if Self.refusedFilesystems.contains(type) { throw .notPermitted }
        }
        return (inode, st)
    }

    /// procfs, sysfs, debugfs, securityfs, tracefs, cgroup, cgroup2, bpf.
    static let refusedFilesystems: Set<Int64> = [
        0x9fa0, 0x6265_6572, 0x6462_6720, 0x7363_6673, 0x7472_6163, 0x27e0eb, 0x6367_7270, 0xcafe_4a11,
    ]

    /// Resolves and records a lookup: the reply's node ID and attributes. A name whose host file the
    /// guest already holds is answered from one fstatat (same single-name, no-follow rules) without
    /// opening it again; anything new goes through `resolve`.
    func lookupRecord(_ name: FUSEName, in parent: Inode) throws(FUSEErrno) -> (UInt64, stat) {
        guard parent.isDirectory else { throw .notDirectory }
        var known = Glibc.stat()
        if fstatat(parent.fd, name.cString, &known, AT_SYMLINK_NOFOLLOW) == 0,
            let id = table.withLock({ $0.rememberKnown(InodeKey(known)) })
        {
            return (id, known)
        }
        let (inode, st) = try resolve(name, in: parent)
        let id = try table.withLock { (table) throws(FUSEErrno) in try table.remember(inode) }
        return (id, st)
    }

    // MARK: - lookup, forget, attributes

    public func lookup(parent: UInt64, name: FUSEName) throws(FUSEErrno) -> (nodeID: UInt64, attr: stat) {
        try lookupRecord(name, in: try directory(parent))
    }

    public func forget(_ nodeID: UInt64, lookups: UInt64) {
        let dropped = table.withLock { $0.forget(nodeID, count: lookups) }
        _ = dropped  // the descriptor closes here, outside the lock, once no operation holds it
    }

    public func getattr(_ nodeID: UInt64, fh: UInt64?) throws(FUSEErrno) -> stat {
        if let fh {
            var st = Glibc.stat()
            let file = try file(fh)
            _ = try check { fstat(file.fd, &st) }
            return st
        }
        return try Self.stat(try inode(nodeID).fd)
    }

    func setattr(_ nodeID: UInt64, _ request: SetattrIn) throws(FUSEErrno) -> stat {
        let inode = try inode(nodeID)
        let handle = request.valid & FUSEProtocol.fattrFH != 0 ? try file(request.fh) : nil
        if request.valid & FUSEProtocol.fattrMode != 0 {
            let mode = Self.permittedMode(request.mode, directory: inode.isDirectory)
            if let handle {
                _ = try check { fchmod(handle.fd, mode) }
            } else {
                guard !inode.isSymlink else { throw .notSupported }
                _ = try check { fchmodat(procSelfFD, Self.procName(inode), mode, 0) }
            }
        }
        let setUID = request.valid & FUSEProtocol.fattrUID != 0
        let setGID = request.valid & FUSEProtocol.fattrGID != 0
        if setUID || setGID {
            let uid = setUID ? uid_t(request.uid) : uid_t.max
            let gid = setGID ? gid_t(request.gid) : gid_t.max
            _ = try check { fchownat(inode.fd, "", uid, gid, ks_fuse_at_empty_path | AT_SYMLINK_NOFOLLOW) }
        }
        if request.valid & FUSEProtocol.fattrSize != 0 {
            guard request.size <= UInt64(Int64.max) else { throw .invalid }
            let size = off_t(request.size)
            if let handle {
                _ = try check { ftruncate(handle.fd, size) }
            } else {
                guard !inode.isDirectory else { throw .isDirectory }
                guard inode.isRegular else { throw .invalid }
                let fd = try check { openat(procSelfFD, Self.procName(inode), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) }
                defer { close(fd) }
                _ = try check { ftruncate(fd, size) }
            }
        }
        let times = request.valid & (FUSEProtocol.fattrAtime | FUSEProtocol.fattrMtime)
        if times != 0 {
            var spec = [
                Self.timespec(request.valid, FUSEProtocol.fattrAtime, FUSEProtocol.fattrAtimeNow,
                              request.atime, request.atimensec),
                Self.timespec(request.valid, FUSEProtocol.fattrMtime, FUSEProtocol.fattrMtimeNow,
                              request.mtime, request.mtimensec),
            ]
            if let handle {
                _ = try check { futimens(handle.fd, &spec) }
            } else if inode.isSymlink {
                _ = try check { utimensat(inode.fd, "", &spec, ks_fuse_at_empty_path | AT_SYMLINK_NOFOLLOW) }
            } else {
                _ = try check { utimensat(procSelfFD, Self.procName(inode), &spec, 0) }
            }
        }
        return try Self.stat(inode.fd)
    }

    private static func timespec(_ valid: UInt32, _ setBit: UInt32, _ nowBit: UInt32, _ seconds: UInt64,
                                 _ nanoseconds: UInt32) -> Glibc.timespec {
        if valid & setBit == 0 { return Glibc.timespec(tv_sec: 0, tv_nsec: ks_fuse_utime_omit) }
        if valid & nowBit != 0 { return Glibc.timespec(tv_sec: 0, tv_nsec: ks_fuse_utime_now) }
        return Glibc.timespec(tv_sec: Int(Int64(bitPattern: seconds)), tv_nsec: Int(min(nanoseconds, 999_999_999)))
    }

    /// DESTROY: drops every inode and open file (the guest unmounted).
    public func destroy() {
        let dropped = table.withLock { $0.removeAll() }
        _ = dropped
    }
}
