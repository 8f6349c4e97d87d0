/// A minimal cpio "newc" writer: enough for a one-file initramfs in a test.
enum Cpio {
    struct Entry {
        var name: String
        var mode: UInt32
        var data: [UInt8]
    }

    static func archive(_ entries: [Entry]) -> [UInt8] {
        var out: [UInt8] = []
        var inode: UInt32 = 1
        func pad4() { while out.count % 4 != 0 { out.append(0) } }
        func header(_ name: String, mode: UInt32, size: Int, nlink: UInt32) {
            let fields: [UInt32] = [inode, mode, 0, 0, nlink, 0, UInt32(size), 0, 0, 0, 0, UInt32(name.utf8.count + 1), 0]
            out += Array("070701".utf8)
            for f in fields {
                let hex = String(f, radix: 16, uppercase: true)
                out += Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
            }
            out += Array(name.utf8) + [0]
            pad4()
            inode += 1
        }
        for e in entries {
            header(e.name, mode: e.mode, size: e.data.count, nlink: e.mode & 0o040000 != 0 ? 2 : 1)
            out += e.data
            pad4()
        }
        header("TRAILER!!!", mode: 0, size: 0, nlink: 1)
        while out.count % 512 != 0 { out.append(0) }
        return out
    }
}
