// Inodes (O_PATH descriptors keyed by device and inode number) and open file handles.

import Glibc
import Synchronization

/// Identity of a host file.
struct InodeKey: Hashable {
    var device: UInt64
    var inode: UInt64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// A host file the guest has looked up, held by an O_PATH descriptor. The descriptor closes when the
/// last reference goes, so an operation that still holds the inode can never see its fd number
/// reused by another file after a concurrent FORGET.
final class Inode: Sendable {
    let fd: Int32
    let key: InodeKey
    /// File type bits (S_IFMT) at lookup; an inode never changes its type.
    let type: mode_t

    init(fd: Int32, key: InodeKey, type: mode_t) {
        self.fd = fd
        self.key = key
        self.type = type
    }

    deinit { close(fd) }

    var isDirectory: Bool { type == S_IFDIR }
    var isRegular: Bool { type == S_IFREG }
    var isSymlink: Bool { type == S_IFLNK }
}

/// An open file or directory of the guest.
final class OpenFile: Sendable {
    let fd: Int32
    let isDirectory: Bool
    /// Serializes lseek + getdents64 on a directory handle.
    let directoryCursor = Mutex<Void>(())

    init(fd: Int32, isDirectory: Bool) {
        self.fd = fd
        self.isDirectory = isDirectory
    }

    deinit { close(fd) }
}

/// Node IDs to inodes with lookup counts, and handle numbers to open files. Guarded by the
/// file system's mutex; holds every descriptor the file system owns.
struct InodeTable {
    private var nodes: [UInt64: (inode: Inode, lookups: UInt64)] = [:]
    private var idByKey: [InodeKey: UInt64] = [:]
    private var files: [UInt64: OpenFile] = [:]
    private var nextNodeID: UInt64 = FUSEProtocol.rootID + 1
    private var nextHandle: UInt64 = 1
    /// Replaced once, when the serving thread pivots into the share (reopenRootAfterPivot).
    var root: Inode
    /// At most this many inodes plus open files at once (fds are a host resource the guest must
    /// not exhaust).
    let limit: Int

    init(root: Inode, limit: Int) {
        self.root = root
        self.limit = limit
    }

    var inodeCount: Int { nodes.count }
    var openFileCount: Int { files.count }

    func inode(_ nodeID: UInt64) -> Inode? {
        nodeID == FUSEProtocol.rootID ? root : nodes[nodeID]?.inode
    }

    func file(_ fh: UInt64) -> OpenFile? { files[fh] }

    /// Records one more lookup of `inode`, reusing the node ID of a known host file (whose new
    /// descriptor is then dropped). Returns the node ID.
    mutating func remember(_ inode: Inode) throws(FUSEErrno) -> UInt64 {
        if inode.key == root.key { return FUSEProtocol.rootID }
        if let id = idByKey[inode.key], let entry = nodes[id] {
            nodes[id] = (entry.inode, entry.lookups + 1)
            return id
        }
        guard nodes.count + files.count < limit else { throw .tooManyFiles }
        let id = nextNodeID
        nextNodeID += 1
        nodes[id] = (inode, 1)
        idByKey[inode.key] = id
        return id
    }

    /// Drops `count` lookups; the inode goes (and its fd closes) at zero. A count above the
    /// recorded one (a confused or hostile guest) drops the inode too. Returns the inode that was
    /// removed, so the caller can release it outside the lock.
    /// One more lookup of a host file already in the table; nil when it is not.
    mutating func rememberKnown(_ key: InodeKey) -> UInt64? {
        if key == root.key { return FUSEProtocol.rootID }
        guard let id = idByKey[key], let entry = nodes[id] else { return nil }
        nodes[id] = (entry.inode, entry.lookups + 1)
        return id
    }

    mutating func forget(_ nodeID: UInt64, count: UInt64) -> Inode? {
        guard let entry = nodes[nodeID] else { return nil }
        if count < entry.lookups {
            nodes[nodeID] = (entry.inode, entry.lookups - count)
            return nil
        }
        nodes[nodeID] = nil
        idByKey[entry.inode.key] = nil
        return entry.inode
    }

    mutating func addFile(_ file: OpenFile) throws(FUSEErrno) -> UInt64 {
        guard nodes.count + files.count < limit else { throw .tooManyFiles }
        let fh = nextHandle
        nextHandle += 1
        files[fh] = file
        return fh
    }

    mutating func removeFile(_ fh: UInt64) -> OpenFile? { files.removeValue(forKey: fh) }

    /// Empties the table (DESTROY); returns what was held so it is released outside the lock.
    mutating func removeAll() -> ([Inode], [OpenFile]) {
        defer {
            nodes = [:]
            idByKey = [:]
            files = [:]
        }
        return (nodes.values.map(\.inode), Array(files.values))
    }
}
