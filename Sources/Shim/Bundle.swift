// The bundle directory containerd prepares for a task (cwd of `start` and `delete`):
// config.json (OCI spec), rootfs/ (empty; Create mounts containerd's rootfs mounts on it), log (FIFO),
// work -> state dir. The shim adds `address`.

import OCI
import SystemSupport
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
        case .readSpec(let path, let errno): "read OCI spec \(path): \(Errno(errno))"
        case .badSpec(let reason): "parse OCI spec: \(reason)"
        case .writeAddress(let path, let errno): "write shim address to \(path): \(Errno(errno))"
        case .readAddress(let path, let errno): "read shim address from \(path): \(Errno(errno))"
        }
    }
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
            throw .readSpec(path: specPath, errno: error.rawValue)
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
        } catch where error == .noEntry {
            return nil
        } catch {
            throw .readAddress(path: addressPath, errno: error.rawValue)
        }
    }
}
