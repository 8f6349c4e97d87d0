import CSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An owned file descriptor: closed exactly once, when the last reference goes away or on `close()`.
///
/// A final class (not ~Copyable) so the owners (VM, vCPU, devices) can share it across threads
/// without moving it; the raw value is only handed to system calls.
public final class FileDescriptor: Sendable, CustomStringConvertible {
    public let rawValue: Int32

    /// Takes ownership of `rawValue`, which must be an open descriptor.
    public init(owning rawValue: Int32) {
        precondition(rawValue >= 0, "FileDescriptor: negative descriptor \(rawValue)")
        self.rawValue = rawValue
    }

    /// O_PATH, which Glibc's Swift overlay does not export: a descriptor naming a file without
    /// opening it (for fstat, *at calls and /proc/self/fd paths).
    public static let pathOnly: Int32 = ks_o_path

    /// Opens `path` with `flags` (O_CLOEXEC is always added).
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(Errno) -> FileDescriptor {
        let fd = try retryingSyscall { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(owning: fd)
    }

    deinit { Glibc.close(rawValue) }

    /// Reads up to `count` bytes (one read call).
    public func read(upTo count: Int) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try retryingSyscall {
            buffer.withUnsafeMutableBytes { raw in Glibc.read(rawValue, raw.baseAddress, raw.count) }
        }
        buffer.removeSubrange(n...)
        return buffer
    }

    /// Writes all of `bytes`, looping over short writes (`writeAll(_:_:)`).
    public func writeAll(_ bytes: some Collection<UInt8>) throws(Errno) {
        try SystemSupport.writeAll(rawValue, bytes)
    }

    /// Size in bytes from fstat.
    public func size() throws(Errno) -> Int {
        Int(try status().st_size)
    }

    /// fstat(2).
    public func status() throws(Errno) -> stat {
        var st = stat()
        _ = try retryingSyscall { fstat(rawValue, &st) }
        return st
    }

    /// Opens the directory `name` (one component) below this directory descriptor, following no
    /// symlink: a symlink there fails with ELOOP or ENOTDIR.
    public func openDirectory(_ name: UnsafePointer<CChar>) throws(Errno) -> FileDescriptor {
        let fd = try retryingSyscall { openat(rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        return FileDescriptor(owning: fd)
    }

    /// Reads `count` bytes at `offset` (pread loop); fewer only at end of file.
    public func read(count: Int, at offset: Int) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = try retryingSyscall {
                buffer.withUnsafeMutableBytes { raw in pread(rawValue, raw.baseAddress! + done, count - done, off_t(offset + done)) }
            }
            if n == 0 { break }
            done += n
        }
        buffer.removeSubrange(done...)
        return buffer
    }

    /// Sets or clears O_NONBLOCK.
    public func setNonBlocking(_ on: Bool = true) throws(Errno) {
        let flags = try retryingSyscall { fcntl(rawValue, F_GETFL) }
        let newFlags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        _ = try retryingSyscall { fcntl(rawValue, F_SETFL, newFlags) }
    }

    public var description: String { "fd \(rawValue)" }
}
