// Extended attributes, access checks and file system statistics.

import CHost
import Glibc

/// GETXATTR/LISTXATTR answer: the size needed (when the guest asked with size 0) or the bytes.
enum XattrReply: Equatable {
    case size(Int)
    case data([UInt8])
}

extension PassthroughFileSystem {
    /// Attributes a guest may not set or remove: security.* (file capabilities, LSM labels the
    /// host acts on), trusted.* (host root's own metadata, overlayfs's included) and user.overlay.*
    /// (a host overlay built on this directory must not be redirected by the guest).
    static func isProtectedXattr(_ name: String) -> Bool {
        name.hasPrefix("security.") || name.hasPrefix("trusted.") || name.hasPrefix("user.overlay.")
    }

    /// Extended attributes are read and written through a descriptor opened from the inode's
    /// O_PATH fd, so only on regular files and directories: a device node is never opened, and a
    /// symlink's, FIFO's or socket's attributes read as none (user.* ones cannot exist there).
    static func hasXattrs(_ inode: Inode) -> Bool { inode.isRegular || inode.isDirectory }

    func getxattr(_ nodeID: UInt64, name: FUSEText, size: UInt32) throws(FUSEErrno) -> XattrReply {
        let inode = try inode(nodeID)
        guard Self.hasXattrs(inode) else { throw .noData }
        let fdName = Self.procName(inode)
        if size == 0 {
            return .size(try checkShim { ks_fuse_getxattr(procSelfFD, fdName, name.cString, nil, 0) })
        }
        var value = [UInt8](repeating: 0, count: Int(min(size, UInt32(FUSERequest.xattrSizeMax))))
        let count = try checkShim {
            value.withUnsafeMutableBytes { ks_fuse_getxattr(procSelfFD, fdName, name.cString, $0.baseAddress, $0.count) }
        }
        return .data(Array(value[..<count]))
    }

    func listxattr(_ nodeID: UInt64, size: UInt32) throws(FUSEErrno) -> XattrReply {
        let inode = try inode(nodeID)
        guard Self.hasXattrs(inode) else { return size == 0 ? .size(0) : .data([]) }
        let fdName = Self.procName(inode)
        if size == 0 {
            return .size(try checkShim { ks_fuse_listxattr(procSelfFD, fdName, nil, 0) })
        }
        var list = [CChar](repeating: 0, count: Int(min(size, UInt32(FUSERequest.xattrSizeMax))))
        let count = try checkShim { ks_fuse_listxattr(procSelfFD, fdName, &list, list.count) }
        return .data(list[..<count].map { UInt8(bitPattern: $0) })
    }

    func setxattr(_ nodeID: UInt64, name: FUSEText, value: [UInt8], flags: Int32) throws(FUSEErrno) {
        let inode = try inode(nodeID)
        guard !Self.isProtectedXattr(name.string) else { throw .notPermitted }
        guard Self.hasXattrs(inode) else { throw .notPermitted }
        guard flags & ~(ks_fuse_xattr_create | ks_fuse_xattr_replace) == 0 else { throw .invalid }
        _ = try checkShim {
            value.withUnsafeBytes {
                ks_fuse_setxattr(procSelfFD, Self.procName(inode), name.cString, $0.baseAddress, $0.count, flags)
            }
        }
    }

    func removexattr(_ nodeID: UInt64, name: FUSEText) throws(FUSEErrno) {
        let inode = try inode(nodeID)
        guard !Self.isProtectedXattr(name.string) else { throw .notPermitted }
        guard Self.hasXattrs(inode) else { throw .notPermitted }
        _ = try checkShim { ks_fuse_removexattr(procSelfFD, Self.procName(inode), name.cString) }
    }

    /// ACCESS, judged from the file's mode for the caller's uid/gid (supplementary groups are the
    /// guest kernel's to check): root may read and write anything and execute what has an x bit.
    public func access(_ nodeID: UInt64, mask: UInt32, caller: FUSECaller) throws(FUSEErrno) {
        let st = try Self.stat(try inode(nodeID).fd)
        let wanted = mode_t(mask) & 0o7
        if wanted == 0 { return }
        if caller.uid == 0 {
            let executable = st.st_mode & S_IFMT == S_IFDIR || st.st_mode & 0o111 != 0
            if wanted & mode_t(X_OK) != 0 && !executable { throw .accessDenied }
            return
        }
        let granted: mode_t
        if st.st_uid == uid_t(caller.uid) {
            granted = (st.st_mode >> 6) & 0o7
        } else if st.st_gid == gid_t(caller.gid) {
            granted = (st.st_mode >> 3) & 0o7
        } else {
            granted = st.st_mode & 0o7
        }
        guard wanted & ~granted == 0 else { throw .accessDenied }
    }

    public func statfs(_ nodeID: UInt64) throws(FUSEErrno) -> statvfs {
        var st = Glibc.statvfs()
        let inode = try inode(nodeID)
        _ = try check { fstatvfs(inode.fd, &st) }
        return st
    }
}
