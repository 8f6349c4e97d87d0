// A FUSE request decoded from bytes into a typed enum: the only place request layouts live.

import Glibc

/// fuse_in_header.
public struct FUSERequestHeader: Sendable, Equatable {
    public var length: UInt32
    public var opcode: UInt32
    public var unique: UInt64
    public var nodeID: UInt64
    public var uid: UInt32
    public var gid: UInt32
    public var pid: UInt32
    public var totalExtensionLength: UInt16

    init(_ reader: inout WireReader) throws(FUSEErrno) {
        length = try reader.u32()
        opcode = try reader.u32()
        unique = try reader.u64()
        nodeID = try reader.u64()
        uid = try reader.u32()
        gid = try reader.u32()
        pid = try reader.u32()
        totalExtensionLength = try reader.u16()
        try reader.skip(2)
    }
}

struct InitIn: Equatable {
    var major: UInt32
    var minor: UInt32
    var maxReadahead: UInt32
    var flags: UInt64
}

struct SetattrIn: Equatable {
    var valid: UInt32
    var fh: UInt64
    var size: UInt64
    var atime: UInt64
    var mtime: UInt64
    var atimensec: UInt32
    var mtimensec: UInt32
    var mode: UInt32
    var uid: UInt32
    var gid: UInt32
}

/// One decoded request. WRITE carries only its header fields: the data stays in the caller's
/// buffers and is written from there.
enum FUSERequest {
    case initialize(InitIn)
    case destroy
    case lookup(FUSEName)
    case forget(lookups: UInt64)
    case batchForget([(nodeID: UInt64, lookups: UInt64)])
    case getattr(fh: UInt64?)
    case setattr(SetattrIn)
    case readlink
    case symlink(name: FUSEName, target: FUSEText)
    case mknod(name: FUSEName, mode: UInt32, rdev: UInt32)
    case mkdir(name: FUSEName, mode: UInt32)
    case unlink(FUSEName)
    case rmdir(FUSEName)
    case rename(newParent: UInt64, from: FUSEName, to: FUSEName, flags: UInt32)
    case link(target: UInt64, name: FUSEName)
    case open(flags: UInt32)
    case opendir(flags: UInt32)
    case create(name: FUSEName, flags: UInt32, mode: UInt32)
    case read(fh: UInt64, offset: UInt64, size: UInt32)
    case write(fh: UInt64, offset: UInt64, size: UInt32, dataOffset: Int)
    case release(fh: UInt64)
    case releasedir(fh: UInt64)
    case flush(fh: UInt64)
    case fsync(fh: UInt64, dataOnly: Bool)
    case fsyncdir(fh: UInt64, dataOnly: Bool)
    case readdir(fh: UInt64, offset: UInt64, size: UInt32, plus: Bool)
    case statfs
    case setxattr(name: FUSEText, value: [UInt8], flags: Int32)
    case getxattr(name: FUSEText, size: UInt32)
    case listxattr(size: UInt32)
    case removexattr(FUSEText)
    case access(mask: UInt32)
    case fallocate(fh: UInt64, offset: UInt64, length: UInt64, mode: UInt32)
    case lseek(fh: UInt64, offset: UInt64, whence: UInt32)
    case unsupported(UInt32)

    static let xattrNameMax = 255
    static let xattrSizeMax = 65536

    /// Decodes the arguments that follow the header. `reader` holds the whole request (header
    /// included) for every opcode but WRITE, whose reader ends after fuse_write_in.
    /// `setxattrExtended` says whether FUSE_SETXATTR_EXT was negotiated (16-byte fuse_setxattr_in).
    static func parse(
        _ header: FUSERequestHeader, _ reader: inout WireReader, setxattrExtended: Bool = false
    ) throws(FUSEErrno) -> FUSERequest {
        guard let opcode = FUSEOpcode(rawValue: header.opcode) else { return .unsupported(header.opcode) }
        let request: FUSERequest
        switch opcode {
        case .initialize:
            // fuse_init_in grew over time (16 bytes up to 7.35, 64 since): accept both shapes.
            let major = try reader.u32(), minor = try reader.u32()
            let readahead = try reader.u32(), flags = try reader.u32()
            var flags2: UInt32 = 0
            if reader.remaining >= 48 {
                flags2 = try reader.u32()
                try reader.skip(44)
            }
            request = .initialize(
                InitIn(major: major, minor: minor, maxReadahead: readahead,
                       flags: UInt64(flags) | UInt64(flags2) << 32))
            // Later versions may append more; the header length was checked against the buffer.
            return request
        case .destroy: request = .destroy
        case .lookup: request = .lookup(try name(&reader))
        case .forget: request = .forget(lookups: try reader.u64())
        case .batchForget:
            let count = Int(try reader.u32())
            try reader.skip(4)
            guard count <= reader.remaining / 16 else { throw .invalid }
            var entries: [(nodeID: UInt64, lookups: UInt64)] = []
            entries.reserveCapacity(count)
            for _ in 0..<count { entries.append((try reader.u64(), try reader.u64())) }
            request = .batchForget(entries)
        case .getattr:
            let flags = try reader.u32()
            try reader.skip(4)
            let fh = try reader.u64()
            request = .getattr(fh: flags & FUSEProtocol.getattrFH != 0 ? fh : nil)
        case .setattr: request = .setattr(try setattr(&reader))
        case .readlink: request = .readlink
        case .symlink:
            let entry = try name(&reader)
            let target = try FUSEText(validating: try reader.cString(), maxLength: Int(PATH_MAX) - 1)
            request = .symlink(name: entry, target: target)
        case .mknod:
            let mode = try reader.u32(), rdev = try reader.u32()
            try reader.skip(8)  // umask, padding
            request = .mknod(name: try name(&reader), mode: mode, rdev: rdev)
        case .mkdir:
            let mode = try reader.u32()
            try reader.skip(4)  // umask
            request = .mkdir(name: try name(&reader), mode: mode)
        case .unlink: request = .unlink(try name(&reader))
        case .rmdir: request = .rmdir(try name(&reader))
        case .rename, .rename2:
            let newParent = try reader.u64()
            var flags: UInt32 = 0
            if opcode == .rename2 {
                flags = try reader.u32()
                try reader.skip(4)
            }
            let from = try name(&reader)
            request = .rename(newParent: newParent, from: from, to: try name(&reader), flags: flags)
        case .link:
            let target = try reader.u64()
            request = .link(target: target, name: try name(&reader))
        case .open, .opendir:
            let flags = try reader.u32()
            try reader.skip(4)
            request = opcode == .open ? .open(flags: flags) : .opendir(flags: flags)
        case .create:
            let flags = try reader.u32(), mode = try reader.u32()
            try reader.skip(8)  // umask, open_flags
            request = .create(name: try name(&reader), flags: flags, mode: mode)
        case .read, .readdir, .readdirplus:
            let fh = try reader.u64(), offset = try reader.u64(), size = try reader.u32()
            try reader.skip(20)  // read_flags, lock_owner, flags, padding
            request = opcode == .read
                ? .read(fh: fh, offset: offset, size: size)
                : .readdir(fh: fh, offset: offset, size: size, plus: opcode == .readdirplus)
        case .write:
            let fh = try reader.u64(), offset = try reader.u64(), size = try reader.u32()
            try reader.skip(20)  // write_flags, lock_owner, flags, padding
            return .write(fh: fh, offset: offset, size: size, dataOffset: reader.position)
        case .release, .releasedir, .flush:
            let fh = try reader.u64()
            try reader.skip(16)
            switch opcode {
            case .release: request = .release(fh: fh)
            case .releasedir: request = .releasedir(fh: fh)
            default: request = .flush(fh: fh)
            }
        case .fsync, .fsyncdir:
            let fh = try reader.u64(), flags = try reader.u32()
            try reader.skip(4)
            let dataOnly = flags & FUSEProtocol.fsyncFdatasync != 0
            request = opcode == .fsync ? .fsync(fh: fh, dataOnly: dataOnly) : .fsyncdir(fh: fh, dataOnly: dataOnly)
        case .statfs: request = .statfs
        case .setxattr:
            let size = Int(try reader.u32()), flags = Int32(bitPattern: try reader.u32())
            if setxattrExtended { try reader.skip(8) }
            let attr = try xattrName(&reader)
            guard size <= xattrSizeMax else { throw .tooBig }
            request = .setxattr(name: attr, value: Array(try reader.bytes(size)), flags: flags)
        case .getxattr, .listxattr:
            let size = try reader.u32()
            try reader.skip(4)
            request = opcode == .getxattr
                ? .getxattr(name: try xattrName(&reader), size: size) : .listxattr(size: size)
        case .removexattr: request = .removexattr(try xattrName(&reader))
        case .access:
            let mask = try reader.u32()
            try reader.skip(4)
            request = .access(mask: mask)
        case .fallocate:
            let fh = try reader.u64(), offset = try reader.u64(), length = try reader.u64()
            let mode = try reader.u32()
            try reader.skip(4)
            request = .fallocate(fh: fh, offset: offset, length: length, mode: mode)
        case .lseek:
            let fh = try reader.u64(), offset = try reader.u64(), whence = try reader.u32()
            try reader.skip(4)
            request = .lseek(fh: fh, offset: offset, whence: whence)
        case .getlk, .setlk, .setlkw, .interrupt, .bmap, .ioctl, .poll, .notifyReply, .copyFileRange,
            .setupMapping, .removeMapping, .syncfs, .tmpfile:
            return .unsupported(header.opcode)
        }
        try reader.finish()
        return request
    }

    private static func name(_ reader: inout WireReader) throws(FUSEErrno) -> FUSEName {
        try FUSEName(validating: try reader.cString())
    }

    private static func xattrName(_ reader: inout WireReader) throws(FUSEErrno) -> FUSEText {
        try FUSEText(validating: try reader.cString(), maxLength: xattrNameMax)
    }

    private static func setattr(_ reader: inout WireReader) throws(FUSEErrno) -> SetattrIn {
        let valid = try reader.u32()
        try reader.skip(4)
        let fh = try reader.u64(), size = try reader.u64()
        try reader.skip(8)  // lock_owner
        let atime = try reader.u64(), mtime = try reader.u64()
        try reader.skip(8)  // ctime
        let atimensec = try reader.u32(), mtimensec = try reader.u32()
        try reader.skip(4)  // ctimensec
        let mode = try reader.u32()
        try reader.skip(4)
        let uid = try reader.u32(), gid = try reader.u32()
        try reader.skip(4)
        return SetattrIn(valid: valid, fh: fh, size: size, atime: atime, mtime: mtime,
                         atimensec: atimensec, mtimensec: mtimensec, mode: mode, uid: uid, gid: gid)
    }
}
