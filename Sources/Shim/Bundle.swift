// The bundle directory containerd prepares for a task (cwd of `start` and `delete`):
// config.json (OCI spec), rootfs/ (empty; Create mounts containerd's rootfs mounts on it), log (FIFO),
// work -> state dir. The shim adds `address`.

import OCI
#if canImport(Glibc)
import Glibc
#endif

/// A failed operation on a bundle, named after the operation.
public enum BundleError: Error, Equatable, CustomStringConvertible {
    case readSpec(path: String, errno: Int32)
    case badSpec(String)
    case writeAddress(path: String, errno: Int32)
    case readAddress(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .readSpec(let path, let errno): "read OCI spec \(path): \(errnoText(errno))"
        case .badSpec(let reason): "parse OCI spec: \(reason)"
        case .writeAddress(let path, let errno): "write shim address to \(path): \(errnoText(errno))"
        case .readAddress(let path, let errno): "read shim address from \(path): \(errnoText(errno))"
        }
    }
}

/// The readable text of an errno value.
func errnoText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}

/// A task's bundle directory.
public struct BundleDirectory: Sendable {
    public var path: String

    public init(path: String) {
        self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    public var specPath: String { path + "/config.json" }
    public var rootfsPath: String { path + "/rootfs" }
    public var addressPath: String { path + "/address" }
    public var logPath: String { path + "/log" }

    /// Reads and parses config.json.
    public func readSpec() throws(BundleError) -> OCISpec {
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(specPath)
        } catch {
            throw .readSpec(path: specPath, errno: error.code)
        }
        return try OCISpec(json: bytes)
    }

    /// Writes `address` (no newline) atomically, as containerd's WriteAddress does: write a temporary
    /// file next to it, then rename it over `address`.
    public func writeAddress(_ address: String) throws(BundleError) {
        let temporary = path + "/.address"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .writeAddress(path: temporary, errno: errno) }
        let bytes = Array(address.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let writeErrno = errno
        close(fd)
        guard written == bytes.count else {
            unlink(temporary)
            throw .writeAddress(path: temporary, errno: written < 0 ? writeErrno : EIO)
        }
        guard rename(temporary, addressPath) == 0 else {
            let renameErrno = errno
            unlink(temporary)
            throw .writeAddress(path: addressPath, errno: renameErrno)
        }
    }

    /// The address written by `start`, or nil when there is none.
    public func readAddress() throws(BundleError) -> String? {
        do {
            return String(decoding: try readWholeFile(addressPath), as: UTF8.self)
        } catch where error.code == ENOENT {
            return nil
        } catch {
            throw .readAddress(path: addressPath, errno: error.code)
        }
    }
}

/// An errno from a file operation.
struct FileErrno: Error {
    var code: Int32
}

/// Reads a regular file (or a pipe, to EOF).
func readWholeFile(_ path: String) throws(FileErrno) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileErrno(code: errno) }
    defer { close(fd) }
    return try readToEnd(fd)
}

/// Reads `fd` until end of file, retrying on EINTR.
func readToEnd(_ fd: Int32) throws(FileErrno) -> [UInt8] {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw FileErrno(code: errno)
        }
        if count == 0 { return result }
        result += chunk[0..<count]
    }
}

/// Writes all of `bytes` to `fd`, retrying on EINTR and short writes.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(FileErrno) {
    var offset = 0
    while offset < bytes.count {
        let count = bytes.withUnsafeBytes { buffer in
            // SAFETY: offset < buffer.count, so the pointer and length stay inside `bytes`.
            write(fd, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
        }
        if count < 0 {
            if errno == EINTR { continue }
            throw FileErrno(code: errno)
        }
        offset += count
    }
}
