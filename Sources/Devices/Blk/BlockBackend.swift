import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Why a block backend could not be made.
public enum BlockBackendError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Opening the image failed.
    case open(path: String, Errno)
    /// The descriptor was opened for writing: a read-only device takes only read-only descriptors.
    case notReadOnly
    /// fcntl or lseek on the descriptor failed.
    case inspect(Errno)
    /// The image's size is not a whole number of 512-byte sectors.
    case sizeNotSectorMultiple(size: UInt64)

    public var description: String {
        switch self {
        case .open(let path, let e): "block image \(path): open: \(e)"
        case .notReadOnly: "block image: the descriptor must be opened read-only"
        case .inspect(let e): "block image: inspecting the descriptor: \(e)"
        case .sizeNotSectorMultiple(let size):
            "block image: size \(size) is not a multiple of \(BlockGeometry.sectorSize) bytes"
        }
    }
}

/// Sector arithmetic fixed by the virtio-blk specification (5.2): capacity and the request's
/// `sector` field count 512-byte units whatever the block size.
public enum BlockGeometry {
    public static let sectorSize: UInt64 = 512
}

/// What a block device reads from: a fixed-size image. Keeps the device apart from files so the
/// request path can be exercised on anything that can fill a buffer.
public protocol BlockBackend: AnyObject, Sendable {
    /// Size in bytes, a multiple of 512, fixed for the backend's lifetime.
    var size: UInt64 { get }
    /// Fills all of `buffer` from byte `offset`; the caller keeps `offset + buffer.count <= size`.
    /// Throws on an I/O error or when the image ends early (it shrank underneath us: EIO).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(Errno)
    /// What names this image's contents for a snapshot: a VM restored over another image would
    /// read blocks that do not match the guest's page cache (docs/snapshots.md).
    var identity: [UInt64] { get }
}

extension BlockBackend {
    public var identity: [UInt64] { [size] }
}

/// A file or block device opened read-only, read with pread(2).
public final class FileBlockBackend: BlockBackend {
    public let size: UInt64
    /// The file's device, inode, size and modification time (fstat at open).
    public let identity: [UInt64]
    private let descriptor: FileDescriptor

    /// Opens `path` read-only (O_RDONLY | O_CLOEXEC).
    public convenience init(path: String) throws(BlockBackendError) {
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(path, O_RDONLY)
        } catch {
            throw .open(path: path, error)
        }
        try self.init(descriptor: descriptor)
    }

    /// Takes a descriptor that must be open for reading only; its size (lseek to the end, which
    /// also works for block devices) must be a multiple of 512.
    public init(descriptor: FileDescriptor) throws(BlockBackendError) {
        let flags: Int32
        let end: off_t
        var st = stat()
        do {
            flags = try retryingSyscall { fcntl(descriptor.rawValue, F_GETFL) }
            end = try retryingSyscall { lseek(descriptor.rawValue, 0, SEEK_END) }
            _ = try retryingSyscall { fstat(descriptor.rawValue, &st) }
        } catch {
            throw .inspect(error)
        }
        guard flags & O_ACCMODE == O_RDONLY else { throw .notReadOnly }
        let size = UInt64(end)
        guard size % BlockGeometry.sectorSize == 0 else { throw .sizeNotSectorMultiple(size: size) }
        self.size = size
        identity = [UInt64(st.st_dev), UInt64(st.st_ino), size, UInt64(st.st_mtim.tv_sec), UInt64(st.st_mtim.tv_nsec)]
        self.descriptor = descriptor
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(Errno) {
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < buffer.count {
            let position = off_t(offset + UInt64(done))
            let n = try retryingSyscall { pread(descriptor.rawValue, base + done, buffer.count - done, position) }
            if n == 0 { throw Errno(rawValue: EIO) }
            done += n
        }
    }
}
