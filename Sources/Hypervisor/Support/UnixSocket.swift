import CSupport
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Unix stream sockets, as owned descriptors. Thin wrappers over ks_unix.
enum UnixSocket {
    /// A listening socket at `path`; a stale socket file there is removed first.
    static func listen(path: String, backlog: Int32 = 16) throws(Errno) -> FileDescriptor {
        var st = stat()
        if lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        return FileDescriptor(owning: try shimResult(ks_unix_listen(path, backlog, 1, 0)))
    }

    static func connect(path: String) throws(Errno) -> FileDescriptor {
        FileDescriptor(owning: try shimResult(ks_unix_connect(path)))
    }

    /// The next pending connection (non-blocking), or nil when none is waiting.
    static func accept(_ listener: FileDescriptor, nonBlocking: Bool = true) throws(Errno) -> FileDescriptor? {
        let fd = ks_unix_accept(listener.rawValue, nonBlocking ? 1 : 0)
        if fd == -EAGAIN { return nil }
        return FileDescriptor(owning: try shimResult(fd))
    }

    static func pair() throws(Errno) -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        _ = try shimResult(ks_unix_socketpair(&fds))
        return (FileDescriptor(owning: fds[0]), FileDescriptor(owning: fds[1]))
    }

    /// One send without SIGPIPE; returns bytes sent (0 when the socket would block).
    static func send(_ fd: FileDescriptor, _ bytes: ArraySlice<UInt8>) throws(Errno) -> Int {
        let n = bytes.withUnsafeBytes { ks_unix_send(fd.rawValue, $0.baseAddress, $0.count) }
        if n == -Int(EAGAIN) { return 0 }
        if n < 0 { throw Errno(rawValue: Int32(-n)) }
        return n
    }

    /// Sends all of `bytes` on a blocking socket.
    static func sendAll(_ fd: FileDescriptor, _ bytes: [UInt8]) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            offset += try send(fd, bytes[offset...])
        }
    }

    /// One read; nil when it would block, empty at end of stream.
    static func receive(_ fd: FileDescriptor, max: Int) throws(Errno) -> [UInt8]? {
        do {
            return try fd.read(upTo: max)
        } catch .wouldBlock {
            return nil
        }
    }

    /// shutdown(2): `.write` stops sending (the peer reads end of stream).
    static func shutdownWrite(_ fd: FileDescriptor) {
        _ = ks_unix_shutdown(fd.rawValue, 1)
    }
}
