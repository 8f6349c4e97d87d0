// FUSE: requests as the guest's virtio-fs driver sends them, dispatched by the real server on a
// fresh scratch share per input (a file, a directory, a symlink out of the share, a FIFO).
//
// Input: u8 flags (bit 0: INIT first), then requests, each u16 length (mod 8193), u8 shape
// (bits 0-1: request split into 1-3 buffers; bits 2-4: reply capacity), and that many bytes.
// FALLOCATE lengths are capped at 1 MiB so a run cannot fill the host's disk.
import FUSE
import Foundation
import Glibc

enum FUSEFuzz {
    static let replyCapacities = [0, 16, 100, 4096, 1 << 17 + 16, 1 << 20 + 16, 64, 1 << 12 + 16]
    static let fallocateOpcode: UInt32 = 43
    static let initOpcode: UInt32 = 26

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let flags = input.u8()
        guard let share = Share() else { preconditionFailure("fuse fuzz: cannot make a scratch share") }
        defer { share.remove() }
        let fileSystem: PassthroughFileSystem
        do {
            fileSystem = try PassthroughFileSystem(PassthroughConfiguration(root: share.path, maxOpenFiles: 64))
        } catch {
            preconditionFailure("fuse fuzz: cannot open the share: \(error)")
        }
        let server = FUSEServer(fileSystem: fileSystem, configuration: FUSEServerConfiguration(maxWrite: 1 << 17))
        defer { server.resetSession() }
        if flags & 1 != 0 {
            send(server, initRequest(unique: 1), shape: 0x0c)
        }
        var requests = 0
        while !input.isEmpty, requests < 64 {
            requests += 1
            let length = Int(input.u16() % 8193)
            let shape = input.u8()
            send(server, capFallocate(input.take(length)), shape: shape)
        }
    }

    private static func send(_ server: FUSEServer, _ request: [UInt8], shape: UInt8) {
        let pieces = Int(shape & 3) % 3 + 1
        let capacity = replyCapacities[Int(shape >> 2) & 7]
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: max(capacity, 1), alignment: 8)
        defer { reply.deallocate() }
        let replySlice = UnsafeMutableRawBufferPointer(rebasing: reply[0..<capacity])
        let outcome = request.withUnsafeBytes { all -> FUSEOutcome in
            var segments: [UnsafeRawBufferPointer] = []
            var start = 0
            for piece in 0..<pieces {
                let end = piece == pieces - 1 ? all.count : min(all.count, start + all.count / pieces)
                segments.append(UnsafeRawBufferPointer(rebasing: all[start..<end]))
                start = end
            }
            return server.handle(FUSERequestBuffers(segments), reply: FUSEReplyBuffers([replySlice]))
        }
        if case .replied(let count) = outcome {
            precondition(count >= 16 && count <= capacity, "fuse fuzz: reply of \(count) bytes in a \(capacity) byte buffer")
        }
    }

    /// The request with a FALLOCATE's length capped at 1 MiB.
    private static func capFallocate(_ request: [UInt8]) -> [UInt8] {
        guard request.count >= 40 + 24, le32(request, 4) == fallocateOpcode else { return request }
        var capped = request
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(request[56 + i]) << (8 * i) }
        length = min(length, 1 << 20)
        for i in 0..<8 { capped[56 + i] = UInt8(truncatingIfNeeded: length >> (8 * i)) }
        return capped
    }

    private static func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    /// A scratch directory under $TMPDIR, removed after the input.
    final class Share {
        let path: String

        init?() {
            let base = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/kata-fuzz-fuse.XXXXXX"
            var template = Array(base.utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap(mkdtemp) }) else { return nil }
            path = String(cString: made)
            let manager = FileManager.default
            do {
                try Data(repeating: 0x61, count: 4096).write(to: URL(fileURLWithPath: path + "/file"))
                try manager.createDirectory(atPath: path + "/dir/nested", withIntermediateDirectories: true)
                try Data("x".utf8).write(to: URL(fileURLWithPath: path + "/dir/small"))
                try manager.createSymbolicLink(atPath: path + "/link", withDestinationPath: "/etc/passwd")
            } catch {
                remove()
                return nil
            }
            guard mkfifo(path + "/fifo", 0o644) == 0 else {
                remove()
                return nil
            }
        }

        func remove() {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    // MARK: seeds

    static func header(_ opcode: UInt32, node: UInt64, unique: UInt64, args: [UInt8]) -> [UInt8] {
        var w = SeedWriter()
        w.u32(UInt32(40 + args.count))
        w.u32(opcode)
        w.u64(unique)
        w.u64(node)
        w.u32(0)  // uid
        w.u32(0)  // gid
        w.u32(4242)  // pid
        w.u32(0)  // total_extlen, padding
        w.raw(args)
        return w.bytes
    }

    static func initRequest(unique: UInt64) -> [UInt8] {
        var args = SeedWriter()
        args.u32(7)
        args.u32(31)
        args.u32(1 << 17)
        args.u32(0xffff_ffff)
        return header(initOpcode, node: 0, unique: unique, args: args.bytes)
    }

    static var seeds: [(name: String, bytes: [UInt8])] {
        func name(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func session(_ flags: UInt8, _ requests: [[UInt8]], shape: UInt8 = 0x0c) -> [UInt8] {
            var w = SeedWriter()
            w.u8(flags)
            for request in requests {
                w.u16(UInt16(request.count))
                w.u8(shape)
                w.raw(request)
            }
            return w.bytes
        }
        // Node ids are handed out from 2 upwards in lookup order; file handles from 1.
        let browse = [
            header(1, node: 1, unique: 2, args: name("file")),  // LOOKUP
            header(3, node: 2, unique: 3, args: u32(0) + u32(0) + u64(0)),  // GETATTR
            header(14, node: 2, unique: 4, args: u32(UInt32(O_RDWR)) + u32(0)),  // OPEN
            header(15, node: 2, unique: 5, args: u64(1) + u64(0) + u32(4096) + [UInt8](repeating: 0, count: 20)),  // READ
            header(16, node: 2, unique: 6, args: u64(1) + u64(10) + u32(5) + [UInt8](repeating: 0, count: 20) + Array("hello".utf8)),  // WRITE
            header(18, node: 2, unique: 7, args: u64(1) + [UInt8](repeating: 0, count: 16)),  // RELEASE
            header(27, node: 1, unique: 8, args: u32(0) + u32(0)),  // OPENDIR
            header(44, node: 1, unique: 9, args: u64(2) + u64(0) + u32(4096) + [UInt8](repeating: 0, count: 20)),  // READDIRPLUS
            header(2, node: 2, unique: 10, args: u64(1)),  // FORGET
        ]
        let change = [
            header(35, node: 1, unique: 2, args: u32(UInt32(O_CREAT | O_RDWR)) + u32(0o100644) + u32(0o022) + u32(0) + name("new")),  // CREATE
            header(9, node: 1, unique: 3, args: u32(0o755) + u32(0o022) + name("sub")),  // MKDIR
            header(12, node: 1, unique: 4, args: u64(1) + name("new") + name("renamed")),  // RENAME
            header(21, node: 1, unique: 5, args: u32(3) + u32(0) + name("user.k") + Array("val".utf8)),  // SETXATTR
            header(43, node: 2, unique: 6, args: u64(1) + u64(0) + u64(1 << 40) + u32(0) + u32(0)),  // FALLOCATE
            header(6, node: 1, unique: 7, args: name("sl") + name("/etc/shadow")),  // SYMLINK
            header(8, node: 1, unique: 8, args: u32(0o010644) + u32(0) + u32(0o022) + u32(0) + name("p2")),  // MKNOD fifo
            header(10, node: 1, unique: 9, args: name("renamed")),  // UNLINK
            header(1, node: 1, unique: 10, args: name("fifo")),  // LOOKUP fifo
            header(14, node: 3, unique: 11, args: u32(UInt32(O_RDONLY)) + u32(0)),  // OPEN fifo
            header(38, node: 0, unique: 12, args: []),  // DESTROY
        ]
        let oddities = [
            header(26, node: 0, unique: 1, args: u32(7) + u32(12) + u32(0) + u32(0)),  // INIT too old
            initRequest(unique: 2),
            initRequest(unique: 3),  // INIT twice
            header(1, node: 1, unique: 4, args: name("..")),
            header(1, node: 99, unique: 5, args: name("file")),
            header(42, node: 0, unique: 6, args: u32(1000) + u32(0) + u64(2) + u64(1)),  // BATCH_FORGET
            header(999, node: 1, unique: 7, args: []),
        ]
        return [
            ("browse", session(1, browse)),
            ("change", session(1, change)),
            ("oddities", session(0, oddities, shape: 0x05)),
        ]
    }
}
