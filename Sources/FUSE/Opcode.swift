// FUSE opcodes (include/uapi/linux/fuse.h, enum fuse_opcode) and protocol constants.

/// The operations of the FUSE protocol this server knows by number.
public enum FUSEOpcode: UInt32, Sendable {
    case lookup = 1
    case forget = 2
    case getattr = 3
    case setattr = 4
    case readlink = 5
    case symlink = 6
    case mknod = 8
    case mkdir = 9
    case unlink = 10
    case rmdir = 11
    case rename = 12
    case link = 13
    case open = 14
    case read = 15
    case write = 16
    case statfs = 17
    case release = 18
    case fsync = 20
    case setxattr = 21
    case getxattr = 22
    case listxattr = 23
    case removexattr = 24
    case flush = 25
    case initialize = 26
    case opendir = 27
    case readdir = 28
    case releasedir = 29
    case fsyncdir = 30
    case getlk = 31
    case setlk = 32
    case setlkw = 33
    case access = 34
    case create = 35
    case interrupt = 36
    case bmap = 37
    case destroy = 38
    case ioctl = 39
    case poll = 40
    case notifyReply = 41
    case batchForget = 42
    case fallocate = 43
    case readdirplus = 44
    case rename2 = 45
    case lseek = 46
    case copyFileRange = 47
    case setupMapping = 48
    case removeMapping = 49
    case syncfs = 50
    case tmpfile = 51
}

/// Protocol numbers and flag bits used by the server (names follow fuse.h).
public enum FUSEProtocol {
    public static let majorVersion: UInt32 = 7
    /// The minor version this server speaks (Linux 6.1's header says 38).
    public static let minorVersion: UInt32 = 38
    /// The oldest minor version whose structure sizes this server knows (Linux 4.x and later).
    public static let oldestMinorVersion: UInt32 = 23
    public static let rootID: UInt64 = 1

    public static let inHeaderSize = 40
    public static let outHeaderSize = 16

    // fuse_init_in/out flags
    static let asyncRead: UInt64 = 1 << 0
    static let atomicOTrunc: UInt64 = 1 << 3
    static let bigWrites: UInt64 = 1 << 5
    static let autoInvalData: UInt64 = 1 << 12
    static let doReaddirplus: UInt64 = 1 << 13
    static let readdirplusAuto: UInt64 = 1 << 14
    static let asyncDIO: UInt64 = 1 << 15
    static let parallelDirops: UInt64 = 1 << 18
    static let maxPages: UInt64 = 1 << 22
    static let cacheSymlinks: UInt64 = 1 << 23
    static let initExt: UInt64 = 1 << 30

    // fuse_setattr_in.valid
    static let fattrMode: UInt32 = 1 << 0
    static let fattrUID: UInt32 = 1 << 1
    static let fattrGID: UInt32 = 1 << 2
    static let fattrSize: UInt32 = 1 << 3
    static let fattrAtime: UInt32 = 1 << 4
    static let fattrMtime: UInt32 = 1 << 5
    static let fattrFH: UInt32 = 1 << 6
    static let fattrAtimeNow: UInt32 = 1 << 7
    static let fattrMtimeNow: UInt32 = 1 << 8

    static let getattrFH: UInt32 = 1 << 0
    static let fsyncFdatasync: UInt32 = 1 << 0
    /// Linux refuses more than 256 pages per request (FUSE_MAX_MAX_PAGES).
    static let maxMaxPages: UInt32 = 256
    static let pageSize: UInt32 = 4096
}
