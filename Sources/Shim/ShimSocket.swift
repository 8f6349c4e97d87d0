// The shim's ttrpc socket: `unix:///run/containerd/s/<sha256 hex of address/namespace/group>`,
// as containerd 1.6's runtime/v2/shim/util_unix.go names it (a bundle path is too long for
// sun_path). Created by `start` (mode 0600 from bind on, never wider), served by the daemon,
// removed by whoever ends it.

import CSupport
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A failed socket operation, named after the operation.
public enum SocketError: Error, Equatable, CustomStringConvertible {
    case notUnixAddress(String)
    case pathTooLong(String)
    case createDirectory(path: String, errno: Int32)
    case listen(path: String, errno: Int32)
    case connect(path: String, errno: Int32)

    public var description: String {
        switch self {
        case .notUnixAddress(let address): "shim address \(address) is not a unix:// path"
        case .pathTooLong(let path): "socket path \(path) is \(path.utf8.count) bytes, longer than sun_path allows (107)"
        case .createDirectory(let path, let errno): "create socket directory \(path): \(Errno(errno))"
        case .listen(let path, let errno): "listen on \(path): \(Errno(errno))"
        case .connect(let path, let errno): "connect to \(path): \(Errno(errno))"
        }
    }
}

/// Where a shim listens.
public struct ShimSocket: Equatable, Sendable {
    /// The directory containerd 1.6 puts shim sockets in.
    public static let defaultDirectory = "/run/containerd/s"

    public var path: String

    public init(path: String) {
        self.path = path
    }

    /// The socket of the shim serving `groupID` for containerd at `containerdAddress` in `namespace`.
    public init(containerdAddress: String, namespace: String, groupID: String, directory: String = defaultDirectory) {
        path = directory + "/" + SHA256.hexDigest(containerdAddress + "/" + namespace + "/" + groupID)
    }

    /// Parses `unix:///path` (what `start` prints and the bundle's `address` holds).
    public init(address: String) throws(SocketError) {
        guard address.hasPrefix("unix://") else { throw .notUnixAddress(address) }
        path = String(address.dropFirst("unix://".count))
    }

    public var address: String { "unix://" + path }

    /// Creates the parent directory and listens (close-on-exec) on a socket file created 0600.
    public func listen() throws(SocketError) -> Int32 {
        guard path.utf8.count < 108 else { throw .pathTooLong(path) }
        try makeDirectories(parentDirectory)
        let fd = ks_unix_listen(path, 128, 0, 1)
        guard fd >= 0 else {
            if fd == -ENAMETOOLONG { throw .pathTooLong(path) }
            throw .listen(path: path, errno: -fd)
        }
        return fd
    }

    /// Whether a live server accepts connections on this socket.
    public func canConnect() -> Bool {
        let fd = ks_unix_connect(path)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Removes the socket file if it exists.
    public func remove() {
        unlink(path)
    }

    var parentDirectory: String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    private func makeDirectories(_ directory: String) throws(SocketError) {
        var current = ""
        for component in directory.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o711) != 0 && errno != EEXIST {
                throw .createDirectory(path: current, errno: errno)
            }
        }
    }

    /// The path a listening socket descriptor is bound to (the daemon finds its socket from fd 3).
    public static func boundPath(of fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 128)
        let rc = buffer.withUnsafeMutableBufferPointer { ks_unix_socket_path(fd, $0.baseAddress, Int32($0.count)) }
        guard rc == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
