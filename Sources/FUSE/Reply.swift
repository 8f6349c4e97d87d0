// Reply payload layouts (fuse_attr, fuse_entry_out, fuse_dirent, ...): the only place they live.

import Glibc

/// How long the guest kernel may cache names and attributes.
public struct FUSECacheTimeouts: Sendable, Equatable {
    public var entrySeconds: UInt64
    public var attributeSeconds: UInt64

    public init(entrySeconds: UInt64 = 1, attributeSeconds: UInt64 = 1) {
        self.entrySeconds = entrySeconds
        self.attributeSeconds = attributeSeconds
    }
}

/// A host `dev_t` (glibc encoding) to the kernel's 32-bit `new_encode_dev` form FUSE carries.
func encodeDevice(_ device: UInt64) -> UInt32 {
    let major = UInt32(truncatingIfNeeded: ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff))
    let minor = UInt32(truncatingIfNeeded: (device & 0xff) | ((device >> 12) & ~0xff))
    return (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
}

/// The kernel's 32-bit device number to a host `dev_t` (glibc's makedev).
func decodeDevice(_ device: UInt32) -> UInt64 {
    let major = UInt64((device & 0xfff00) >> 8)
    let minor = UInt64((device & 0xff) | ((device >> 12) & 0xfff00))
    return ((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | (minor & 0xff) | ((minor & ~0xff) << 12)
}

extension WireWriter {
    /// fuse_attr (88 bytes).
    mutating func attr(_ st: stat) {
        u64(UInt64(st.st_ino))
        u64(UInt64(bitPattern: Int64(st.st_size)))
        u64(UInt64(bitPattern: Int64(st.st_blocks)))
        u64(UInt64(bitPattern: Int64(st.st_atim.tv_sec)))
        u64(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)))
        u64(UInt64(bitPattern: Int64(st.st_ctim.tv_sec)))
        u32(UInt32(truncatingIfNeeded: st.st_atim.tv_nsec))
        u32(UInt32(truncatingIfNeeded: st.st_mtim.tv_nsec))
        u32(UInt32(truncatingIfNeeded: st.st_ctim.tv_nsec))
        u32(st.st_mode)
        u32(UInt32(truncatingIfNeeded: st.st_nlink))
        u32(st.st_uid)
        u32(st.st_gid)
        u32(encodeDevice(UInt64(st.st_rdev)))
        u32(UInt32(truncatingIfNeeded: st.st_blksize))
        u32(0)  // flags
    }

    /// fuse_entry_out (128 bytes). A zero node ID tells the kernel not to cache the entry.
    mutating func entry(nodeID: UInt64, _ st: stat, timeouts: FUSECacheTimeouts) {
        u64(nodeID)
        u64(0)  // generation: node IDs are never reused while the server lives
        u64(timeouts.entrySeconds)
        u64(timeouts.attributeSeconds)
        u32(0)
        u32(0)
        attr(st)
    }

    /// fuse_attr_out (104 bytes).
    mutating func attrOut(_ st: stat, timeouts: FUSECacheTimeouts) {
        u64(timeouts.attributeSeconds)
        u32(0)
        u32(0)
        attr(st)
    }

    /// fuse_open_out (16 bytes).
    mutating func openOut(fh: UInt64) {
        u64(fh)
        u32(0)  // open_flags: let the guest cache as it likes
        u32(0)
    }

    /// fuse_dirent header plus name, padded to 8 bytes.
    mutating func dirent(ino: UInt64, offset: UInt64, type: UInt8, name: [UInt8]) {
        u64(ino)
        u64(offset)
        u32(UInt32(name.count))
        u32(UInt32(type))
        append(contentsOf: name)
        alignTo8()
    }

    /// fuse_kstatfs (80 bytes).
    mutating func statfs(_ st: statvfs) {
        u64(UInt64(st.f_blocks))
        u64(UInt64(st.f_bfree))
        u64(UInt64(st.f_bavail))
        u64(UInt64(st.f_files))
        u64(UInt64(st.f_ffree))
        u32(UInt32(truncatingIfNeeded: st.f_bsize))
        u32(UInt32(truncatingIfNeeded: st.f_namemax))
        u32(UInt32(truncatingIfNeeded: st.f_frsize))
        u32(0)
        zeros(24)
    }
}

enum DirentSize {
    static let dirent = 24
    static let direntplus = 128 + 24

    /// FUSE_DIRENT_SIZE / FUSE_DIRENTPLUS_SIZE for a name of `nameLength` bytes.
    static func record(nameLength: Int, plus: Bool) -> Int {
        let raw = (plus ? direntplus : dirent) + nameLength
        return (raw + 7) & ~7
    }
}
