// /proc/self/mountinfo (proc(5)): one line per mount,
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//   (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
// optional fields (7) end at the lone "-". Paths escape space, tab, newline and backslash as
// \040, \011, \012 and \134.

/// One mount, as a line of /proc/self/mountinfo describes it.
public struct MountInfo: Sendable, Equatable {
    public var mountID: Int
    public var parentID: Int
    /// The root of the mount within its file system (field 4), unescaped.
    public var root: String
    /// Where it is mounted, relative to the reader's root (field 5), unescaped.
    public var mountPoint: String
    /// Per-mount options (field 6), e.g. "rw,nosuid".
    public var mountOptions: String
    /// The file system type after the "-" separator, e.g. "ext4", "rootfs".
    public var fileSystemType: String
    /// The mount source after the type (e.g. "/dev/vda", "none"), unescaped.
    public var source: String

    public init(
        mountID: Int, parentID: Int, root: String, mountPoint: String, mountOptions: String,
        fileSystemType: String, source: String
    ) {
        self.mountID = mountID
        self.parentID = parentID
        self.root = root
        self.mountPoint = mountPoint
        self.mountOptions = mountOptions
        self.fileSystemType = fileSystemType
        self.source = source
    }

    /// Parses one line; nil when it does not have mountinfo's shape.
    public init?(line: some StringProtocol) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 10, let id = Int(fields[0]), let parent = Int(fields[1]),
            let separator = fields[6...].firstIndex(of: "-"), separator + 2 < fields.count
        else { return nil }
        self.init(
            mountID: id, parentID: parent, root: Self.unescape(fields[3]), mountPoint: Self.unescape(fields[4]),
            mountOptions: String(fields[5]), fileSystemType: String(fields[separator + 1]),
            source: Self.unescape(fields[separator + 2]))
    }

    /// Every well-formed line of `text`, in order (malformed lines are skipped).
    public static func parse(_ text: String) -> [MountInfo] {
        text.split(separator: "\n").compactMap { MountInfo(line: $0) }
    }

    /// The calling process's mounts (/proc/self/mountinfo; /proc must be mounted).
    public static func current() throws(Errno) -> [MountInfo] {
        parse(try readWholeTextFile("/proc/self/mountinfo"))
    }

    /// Decodes the kernel's octal escapes (a backslash and three octal digits, e.g. \040 for a
    /// space); any other backslash is kept as it is.
    public static func unescape(_ field: some StringProtocol) -> String {
        guard field.utf8.contains(UInt8(ascii: "\\")) else { return String(field) }
        let utf8 = Array(field.utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
                let value = octalByte(utf8[i + 1], utf8[i + 2], utf8[i + 3])
            {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func octalByte(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8? {
        let zero = UInt8(ascii: "0"), seven = UInt8(ascii: "7")
        guard (zero...seven).contains(a), (zero...seven).contains(b), (zero...seven).contains(c) else { return nil }
        let value = Int(a - zero) * 64 + Int(b - zero) * 8 + Int(c - zero)
        return value <= 255 ? UInt8(value) : nil
    }
}
