// Creating, linking, renaming and removing names. Every name is one validated component below a
// directory inode's fd; nothing here follows a symlink.

import CHost
import Glibc

extension PassthroughFileSystem {
    public func mkdir(parent: UInt64, name: FUSEName, mode: UInt32, caller: FUSECaller)
        throws(FUSEErrno) -> (nodeID: UInt64, attr: stat)
    {
        let dir = try directory(parent)
        _ = try check { mkdirat(dir.fd, name.cString, Self.permittedMode(mode, directory: true)) }
        return try settle(name, in: dir, mode: mode, caller: caller)
    }

    public func mknod(parent: UInt64, name: FUSEName, mode: UInt32, rdev: UInt32, caller: FUSECaller)
        throws(FUSEErrno) -> (nodeID: UInt64, attr: stat)
    {
        let dir = try directory(parent)
        let type = mode_t(mode) & S_IFMT
        switch type {
        case S_IFREG, S_IFIFO, S_IFSOCK: break
        case S_IFCHR where rdev == 0: break  // overlayfs whiteout
        case S_IFCHR, S_IFBLK: guard configuration.allowDeviceNodes else { throw .notPermitted }
        default: throw .invalid
        }
        let device = dev_t(decodeDevice(rdev))
        _ = try check { mknodat(dir.fd, name.cString, type | Self.permittedMode(mode, directory: false), device) }
        return try settle(name, in: dir, mode: mode, caller: caller)
    }

    /// The target is only text to the host: it is stored, never resolved here.
    func symlink(parent: UInt64, name: FUSEName, target: FUSEText, caller: FUSECaller)
        throws(FUSEErrno) -> (nodeID: UInt64, attr: stat)
    {
        let dir = try directory(parent)
        _ = try check { symlinkat(target.cString, dir.fd, name.cString) }
        return try settle(name, in: dir, mode: nil, caller: caller)
    }

    /// LINK: a new name for an inode the guest already holds, so its source is always in the share.
    public func link(_ nodeID: UInt64, parent: UInt64, name: FUSEName) throws(FUSEErrno)
        -> (nodeID: UInt64, attr: stat)
    {
        let source = try inode(nodeID)
        let dir = try directory(parent)
        guard !source.isDirectory else { throw .notPermitted }
        if linkat(source.fd, "", dir.fd, name.cString, ks_fuse_at_empty_path) != 0 {
            // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd/N names the same inode.
            guard errno == ENOENT || errno == EPERM else { throw FUSEErrno.current }
            _ = try check { linkat(procSelfFD, Self.procName(source), dir.fd, name.cString, AT_SYMLINK_FOLLOW) }
        }
        return try lookupRecord(name, in: dir)
    }

    public func unlink(parent: UInt64, name: FUSEName) throws(FUSEErrno) {
        let dir = try directory(parent)
        _ = try check { unlinkat(dir.fd, name.cString, 0) }
    }

    public func rmdir(parent: UInt64, name: FUSEName) throws(FUSEErrno) {
        let dir = try directory(parent)
        _ = try check { unlinkat(dir.fd, name.cString, AT_REMOVEDIR) }
    }

    public func rename(parent: UInt64, name: FUSEName, newParent: UInt64, newName: FUSEName, flags: UInt32)
        throws(FUSEErrno)
    {
        let allowed = ks_fuse_rename_noreplace | ks_fuse_rename_exchange | ks_fuse_rename_whiteout
        guard flags & ~allowed == 0 else { throw .invalid }
        let from = try directory(parent)
        let to = try directory(newParent)
        _ = try checkShim { ks_fuse_renameat2(from.fd, name.cString, to.fd, newName.cString, flags) }
    }

    public func readlink(_ nodeID: UInt64) throws(FUSEErrno) -> [UInt8] {
        let inode = try inode(nodeID)
        guard inode.isSymlink else { throw .invalid }
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
        let count = try check {
            buffer.withUnsafeMutableBufferPointer { raw in
                raw.withMemoryRebound(to: CChar.self) { readlinkat(inode.fd, "", $0.baseAddress!, $0.count) }
            }
        }
        return Array(buffer[..<count])
    }

    /// Permission bits a guest may give a host file: never setuid, and setgid only on a directory
    /// (where it means "new entries inherit the group", not a privilege).
    static func permittedMode(_ mode: UInt32, directory: Bool) -> mode_t {
        let bits = mode_t(mode & 0o7777) & ~S_ISUID
        return directory ? bits : bits & ~S_ISGID
    }

    /// After a creation: looks the new name up, gives it the caller's ownership (root only) and the
    /// requested permission bits as permitted (the host process's umask must not strip what the
    /// guest asked; `permittedMode` strips what it may not have).
    func settle(_ name: FUSEName, in dir: Inode, mode: UInt32?, caller: FUSECaller) throws(FUSEErrno)
        -> (nodeID: UInt64, attr: stat)
    {
        let (inode, created) = try resolve(name, in: dir)
        var st = created
        if setsOwner {
            let parentStat = try Self.stat(dir.fd)
            let gid = parentStat.st_mode & S_ISGID != 0 ? parentStat.st_gid : gid_t(caller.gid)
            if st.st_uid != uid_t(caller.uid) || st.st_gid != gid {
                _ = try check { fchownat(inode.fd, "", uid_t(caller.uid), gid, ks_fuse_at_empty_path | AT_SYMLINK_NOFOLLOW) }
                st = try Self.stat(inode.fd)
            }
        }
        if let mode, !inode.isSymlink {
            let inherited = inode.isDirectory ? st.st_mode & S_ISGID : 0
            let wanted = Self.permittedMode(mode, directory: inode.isDirectory) | inherited
            if st.st_mode & 0o7777 != wanted {
                _ = try check { fchmodat(procSelfFD, Self.procName(inode), wanted, 0) }
                st = try Self.stat(inode.fd)
            }
        }
        let id = try table.withLock { (table) throws(FUSEErrno) in try table.remember(inode) }
        return (id, st)
    }
}
