// READDIR and READDIRPLUS: host getdents64 records re-encoded as FUSE dirents.

import CHost
import Glibc

extension PassthroughFileSystem {
    /// Host directory bytes read per getdents64 call.
    static let getdentsBufferSize = 32 * 1024

    /// Encodes entries from `offset` on into at most `size` bytes. With `plus`, every entry but "."
    /// and ".." is looked up (counting as a lookup the guest will FORGET); an entry that cannot be
    /// looked up is sent with node ID 0 and no attributes, so the guest asks again by name.
    func readdir(_ fh: UInt64, directory nodeID: UInt64, offset: UInt64, size: Int, plus: Bool)
        throws(FUSEErrno) -> [UInt8]
    {
        let file = try file(fh)
        guard file.isDirectory else { throw .notDirectory }
        let parent = plus ? try directory(nodeID) : nil
        var output = WireWriter(capacity: min(size, 64 * 1024))
        var buffer = [UInt8](repeating: 0, count: Self.getdentsBufferSize)
        try file.directoryCursor.withLock { (_) throws(FUSEErrno) in
            _ = try check { Glibc.lseek(file.fd, off_t(Int64(bitPattern: offset)), SEEK_SET) }
            fill: while true {
                let count = try checkShim {
                    buffer.withUnsafeMutableBytes { ks_fuse_getdents64(file.fd, $0.baseAddress, $0.count) }
                }
                if count == 0 { break }
                var position = 0
                while position < count {
                    let record = try HostDirent(buffer, at: position, end: count)
                    position += record.length
                    let needed = DirentSize.record(nameLength: record.name.count, plus: plus)
                    if output.bytes.count + needed > size { break fill }
                    if let parent {
                        encodePlus(record, parent: parent, into: &output)
                    }
                    output.dirent(ino: record.inode, offset: record.nextOffset, type: record.type, name: record.name)
                }
            }
        }
        return output.bytes
    }

    private func encodePlus(_ record: HostDirent, parent: Inode, into output: inout WireWriter) {
        let dot = UInt8(ascii: ".")
        if record.name != [dot], record.name != [dot, dot],
            let name = try? FUSEName(validating: record.name.map { CChar(bitPattern: $0) } + [0]),
            let (nodeID, st) = try? lookupRecord(name, in: parent)
        {
            output.entry(nodeID: nodeID, st, timeouts: configuration.timeouts)
            return
        }
        var st = Glibc.stat()
        st.st_ino = ino_t(record.inode)
        st.st_mode = mode_t(record.type) << 12
        output.entry(nodeID: 0, st, timeouts: FUSECacheTimeouts(entrySeconds: 0, attributeSeconds: 0))
    }
}

/// One linux_dirent64 record: d_ino u64, d_off s64, d_reclen u16, d_type u8, d_name NUL-terminated.
struct HostDirent {
    let inode: UInt64
    let nextOffset: UInt64
    let length: Int
    let type: UInt8
    let name: [UInt8]

    init(_ buffer: [UInt8], at position: Int, end: Int) throws(FUSEErrno) {
        guard position >= 0, end <= buffer.count, end - position >= 20 else { throw .io }
        func field(_ offset: Int, _ size: Int) -> UInt64 {
            (0..<size).reduce(0) { $0 | UInt64(buffer[position + offset + $1]) << (8 * UInt64($1)) }
        }
        inode = field(0, 8)
        nextOffset = field(8, 8)
        length = Int(field(16, 2))
        type = buffer[position + 18]
        guard length >= 20, length <= end - position else { throw .io }
        let nameBytes = buffer[(position + 19)..<(position + length)]
        guard let nul = nameBytes.firstIndex(of: 0) else { throw .io }
        name = Array(buffer[(position + 19)..<nul])
    }
}
