// Open files: open/create, data transfer straight between host files and the caller's buffers,
// sync, allocation, seeking, release.

import CHost
import Glibc

extension PassthroughFileSystem {
    /// The open(2) flags a guest may ask for; the rest (O_CREAT, O_EXCL, O_PATH, O_TMPFILE, O_DIRECT,
    /// O_NOATIME, O_NOFOLLOW ...) are dropped, and O_CLOEXEC | O_NOCTTY always added.
    static func hostOpenFlags(_ guestFlags: UInt32) -> Int32 {
        let flags = Int32(bitPattern: guestFlags)
        let passed = O_ACCMODE | O_APPEND | O_NONBLOCK | O_SYNC | O_DSYNC | O_TRUNC
        return (flags & passed) | O_CLOEXEC | O_NOCTTY
    }

    public func open(_ nodeID: UInt64, flags: UInt32) throws(FUSEErrno) -> UInt64 {
        let inode = try inode(nodeID)
        guard !inode.isDirectory else { throw .isDirectory }
        guard !inode.isSymlink else { throw .loop }
        // Device nodes, FIFOs and sockets are the guest kernel's business, never opened on the host.
        guard inode.isRegular else { throw .notPermitted }
        let hostFlags = Self.hostOpenFlags(flags)
        let fd = try check { openat(procSelfFD, Self.procName(inode), hostFlags | O_NONBLOCK) }
        return try addFile(try Self.regularFile(fd, hostFlags: hostFlags))
    }

    /// Takes `fd` (opened with O_NONBLOCK, so a FIFO could not block us) as an open file if fstat
    /// says it is a regular file, and gives it back the guest's own O_NONBLOCK setting; anything
    /// else is closed and refused (EPERM): the guest never reaches a host device or FIFO.
    static func regularFile(_ fd: Int32, hostFlags: Int32) throws(FUSEErrno) -> OpenFile {
        let file = OpenFile(fd: fd, isDirectory: false)
        var st = Glibc.stat()
        _ = try check { fstat(fd, &st) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .notPermitted }
        if hostFlags & O_NONBLOCK == 0 {
            _ = try check { fcntl(fd, F_SETFL, hostFlags & ~O_NONBLOCK) }
        }
        return file
    }

    public func opendir(_ nodeID: UInt64) throws(FUSEErrno) -> UInt64 {
        let inode = try directory(nodeID)
        let fd = try check { openat(procSelfFD, Self.procName(inode), O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        return try addFile(OpenFile(fd: fd, isDirectory: true))
    }

    /// CREATE makes a new regular file (O_EXCL, so an existing name never opens whatever it is).
    /// When the name exists and the guest did not ask for O_EXCL, it is opened as OPEN would:
    /// regular files only.
    public func create(parent: UInt64, name: FUSEName, flags: UInt32, mode: UInt32, caller: FUSECaller)
        throws(FUSEErrno) -> (nodeID: UInt64, attr: stat, fh: UInt64)
    {
        let dir = try directory(parent)
        let hostFlags = Self.hostOpenFlags(flags)
        let fd: Int32
        do throws(FUSEErrno) {
            fd = try checkShim {
                ks_fuse_openat2(dir.fd, name.cString, UInt64(hostFlags | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK),
                                UInt64(Self.permittedMode(mode, directory: false)), Self.lookupResolve)
            }
        } catch {
            guard error == FUSEErrno(EEXIST), Int32(bitPattern: flags) & O_EXCL == 0 else { throw error }
            return try openExisting(name, in: dir, flags: flags)
        }
        let file = try Self.regularFile(fd, hostFlags: hostFlags)
        let (nodeID, st) = try settle(name, in: dir, mode: mode, caller: caller)
        return try handing(file, for: nodeID, st)
    }

    /// CREATE of a name that exists: a lookup plus OPEN (which refuses all but regular files).
    private func openExisting(_ name: FUSEName, in dir: Inode, flags: UInt32) throws(FUSEErrno)
        -> (nodeID: UInt64, attr: stat, fh: UInt64)
    {
        let (nodeID, _) = try lookupRecord(name, in: dir)
        let fh: UInt64
        do throws(FUSEErrno) {
            fh = try open(nodeID, flags: flags)
        } catch {
            forget(nodeID, lookups: 1)
            throw error
        }
        do throws(FUSEErrno) {
            return (nodeID, try getattr(nodeID, fh: fh), fh)  // after O_TRUNC
        } catch {
            release(fh)
            forget(nodeID, lookups: 1)
            throw error
        }
    }

    /// Records `file` for a node just looked up; drops that lookup again if it cannot.
    private func handing(_ file: OpenFile, for nodeID: UInt64, _ st: stat) throws(FUSEErrno)
        -> (nodeID: UInt64, attr: stat, fh: UInt64)
    {
        do throws(FUSEErrno) {
            return (nodeID, st, try addFile(file))
        } catch {
            forget(nodeID, lookups: 1)
            throw error
        }
    }

    private func addFile(_ file: OpenFile) throws(FUSEErrno) -> UInt64 {
        try table.withLock { (table) throws(FUSEErrno) in try table.addFile(file) }
    }

    public func release(_ fh: UInt64) {
        let dropped = table.withLock { $0.removeFile(fh) }
        _ = dropped  // closes here, outside the lock, unless an operation still uses it
    }

    /// Reads up to the iovecs' total from `offset` straight into them. Returns the bytes read.
    public func read(_ fh: UInt64, offset: UInt64, into iovecs: [iovec]) throws(FUSEErrno) -> Int {
        let file = try file(fh)
        guard !file.isDirectory else { throw .isDirectory }
        return try Self.transfer(iovecs, offset: offset) { vector, count, position in
            preadv(file.fd, vector, count, position)
        }
    }

    /// Writes the iovecs' bytes at `offset`. Returns the bytes written.
    public func write(_ fh: UInt64, offset: UInt64, from iovecs: [iovec]) throws(FUSEErrno) -> Int {
        let file = try file(fh)
        guard !file.isDirectory else { throw .isDirectory }
        return try Self.transfer(iovecs, offset: offset) { vector, count, position in
            pwritev(file.fd, vector, count, position)
        }
    }

    /// Runs preadv/pwritev over the iovecs in IOV_MAX chunks until done, a short transfer or EOF.
    private static func transfer(
        _ iovecs: [iovec], offset: UInt64,
        _ call: (UnsafePointer<iovec>, Int32, off_t) -> Int
    ) throws(FUSEErrno) -> Int {
        guard offset <= UInt64(Int64.max) else { throw .invalid }
        var done = 0
        var index = 0
        while index < iovecs.count {
            let chunk = min(iovecs.count - index, 1024  /* IOV_MAX */)
            let wanted = iovecs[index..<index + chunk].reduce(0) { $0 + $1.iov_len }
            let position = off_t(offset) + off_t(done)
            let count: Int
            do throws(FUSEErrno) {
                count = try check {
                    iovecs.withUnsafeBufferPointer { call($0.baseAddress! + index, Int32(chunk), position) }
                }
            } catch {
                if done > 0 { return done }
                throw error
            }
            done += count
            if count < wanted { break }
            index += chunk
        }
        return done
    }

    /// FLUSH (each close(2) in the guest): close a duplicate, as a close would, to drop POSIX locks.
    public func flush(_ fh: UInt64) throws(FUSEErrno) {
        let file = try file(fh)
        let copy = try check { dup(file.fd) }
        close(copy)
    }

    public func fsync(_ fh: UInt64, dataOnly: Bool) throws(FUSEErrno) {
        let file = try file(fh)
        _ = try check { dataOnly ? fdatasync(file.fd) : Glibc.fsync(file.fd) }
    }

    public func fallocate(_ fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32) throws(FUSEErrno) {
        let file = try file(fh)
        guard offset <= UInt64(Int64.max), length <= UInt64(Int64.max) else { throw .invalid }
        _ = try checkShim {
            ks_fuse_fallocate(file.fd, Int32(bitPattern: mode), Int64(offset), Int64(length))
        }
    }

    /// LSEEK: the kernel sends SEEK_DATA and SEEK_HOLE (and may send SEEK_SET/SEEK_END).
    public func lseek(_ fh: UInt64, offset: UInt64, whence: UInt32) throws(FUSEErrno) -> UInt64 {
        let file = try file(fh)
        let allowed = [SEEK_SET, SEEK_END, ks_fuse_seek_data, ks_fuse_seek_hole]
        guard allowed.contains(Int32(bitPattern: whence)) else { throw .invalid }
        let position = try check { Glibc.lseek(file.fd, off_t(Int64(bitPattern: offset)), Int32(bitPattern: whence)) }
        return UInt64(position)
    }
}
