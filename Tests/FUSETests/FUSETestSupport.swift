// Test harness: a temp share, a server on it, and requests built byte by byte as the kernel would.

import Foundation
import Glibc
import Testing

@testable import FUSE

/// A decoded reply.
struct Reply {
    let length: UInt32
    let error: Int32
    let unique: UInt64
    let payload: [UInt8]

    init(_ bytes: [UInt8]) {
        var reader = WireReader(bytes)
        length = (try? reader.u32()) ?? 0
        error = Int32(bitPattern: (try? reader.u32()) ?? 0)
        unique = (try? reader.u64()) ?? 0
        payload = Array(bytes.dropFirst(16))
    }

    /// Fields read past the payload are 0, so a failed reply fails the test instead of crashing it.
    func u32(_ offset: Int) -> UInt32 {
        guard offset >= 0, offset + 4 <= payload.count else { return 0 }
        return (0..<4).reduce(0) { $0 | UInt32(payload[offset + $1]) << (8 * UInt32($1)) }
    }

    func u64(_ offset: Int) -> UInt64 {
        guard offset >= 0, offset + 8 <= payload.count else { return 0 }
        return (0..<8).reduce(0) { $0 | UInt64(payload[offset + $1]) << (8 * UInt64($1)) }
    }

    // fuse_entry_out: nodeid @0, attr @40. fuse_attr: ino @0, size @8, mode @60, nlink @64, uid @68, gid @72.
    var nodeID: UInt64 { u64(0) }
    var entrySize: UInt64 { u64(48) }
    var entryMode: UInt32 { u32(100) }
    var entryUID: UInt32 { u32(108) }
    var entryGID: UInt32 { u32(112) }
    // fuse_attr_out: attr @16.
    var attrSize: UInt64 { u64(24) }
    var attrMode: UInt32 { u32(76) }
    var attrUID: UInt32 { u32(84) }
    var attrMtime: UInt64 { u64(48) }
    var fh: UInt64 { u64(0) }
}

/// Little-endian argument bytes.
struct Args {
    var bytes: [UInt8] = []

    @discardableResult
    func u32(_ value: UInt32) -> Args { appending((0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }) }
    @discardableResult
    func u64(_ value: UInt64) -> Args { appending((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }) }
    func name(_ string: String) -> Args { appending(Array(string.utf8) + [0]) }
    func raw(_ more: [UInt8]) -> Args { appending(more) }

    private func appending(_ more: [UInt8]) -> Args {
        var copy = self
        copy.bytes += more
        return copy
    }
}

/// fuse_in_header + args.
func requestBytes(_ opcode: UInt32, node: UInt64, unique: UInt64, args: [UInt8], uid: UInt32 = 0,
                  gid: UInt32 = 0, length: UInt32? = nil) -> [UInt8]
{
    var header = Args().u32(length ?? UInt32(40 + args.count)).u32(opcode).u64(unique).u64(node)
        .u32(uid).u32(gid).u32(4242).u32(0)
    header = header.raw(args)
    return header.bytes
}

final class Share {
    let root: String
    let server: FUSEServer
    var fs: PassthroughFileSystem { server.fileSystem }
    private var nextUnique: UInt64 = 1

    init(initialize: Bool = true, configuration: PassthroughConfiguration? = nil) throws {
        var template = Array("/tmp/fuse-test-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw FUSEErrno.current }
        root = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var config = configuration ?? PassthroughConfiguration(root: root)
        config.root = root
        server = FUSEServer(fileSystem: try PassthroughFileSystem(config))
        if initialize {
            let reply = call(.initialize, args: Args().u32(7).u32(36).u32(1 << 17).u32(0xffff_ffff).u32(0)
                .raw([UInt8](repeating: 0, count: 44)))
            precondition(reply.error == 0, "INIT failed: \(reply.error)")
        }
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func path(_ relative: String) -> String { root + "/" + relative }

    func call(_ opcode: FUSEOpcode, node: UInt64 = FUSEProtocol.rootID, args: Args = Args(),
              uid: UInt32 = 0, gid: UInt32 = 0, replyCapacity: Int = 1 << 21) -> Reply
    {
        callRaw(requestBytes(opcode.rawValue, node: node, unique: takeUnique(), args: args.bytes, uid: uid, gid: gid),
                replyCapacity: replyCapacity) ?? Reply([])
    }

    func callRaw(_ bytes: [UInt8], replyCapacity: Int = 1 << 21) -> Reply? {
        server.handle(bytes, replyCapacity: replyCapacity).map(Reply.init)
    }

    func takeUnique() -> UInt64 {
        defer { nextUnique += 1 }
        return nextUnique
    }

    // Common operations, returning the reply for the caller to check.
    func lookup(_ name: String, in parent: UInt64 = FUSEProtocol.rootID) -> Reply {
        call(.lookup, node: parent, args: Args().name(name))
    }

    func forget(_ node: UInt64, _ count: UInt64 = 1) {
        let reply = server.handle(requestBytes(FUSEOpcode.forget.rawValue, node: node, unique: takeUnique(),
                                               args: Args().u64(count).bytes))
        precondition(reply == nil, "FORGET must not reply")
    }

    func open(_ node: UInt64, flags: Int32 = O_RDWR) -> Reply {
        call(.open, node: node, args: Args().u32(UInt32(bitPattern: flags)).u32(0))
    }

    func create(_ name: String, in parent: UInt64 = FUSEProtocol.rootID, mode: UInt32 = 0o100644,
                flags: Int32 = O_RDWR | O_CREAT, uid: UInt32 = 0, gid: UInt32 = 0) -> Reply
    {
        call(.create, node: parent, args: Args().u32(UInt32(bitPattern: flags)).u32(mode).u32(0o022).u32(0).name(name),
             uid: uid, gid: gid)
    }

    func read(_ node: UInt64, fh: UInt64, offset: UInt64, size: UInt32) -> Reply {
        call(.read, node: node, args: readArgs(fh: fh, offset: offset, size: size))
    }

    func write(_ node: UInt64, fh: UInt64, offset: UInt64, data: [UInt8]) -> Reply {
        call(.write, node: node, args: readArgs(fh: fh, offset: offset, size: UInt32(data.count)).raw(data))
    }

    func readArgs(fh: UInt64, offset: UInt64, size: UInt32) -> Args {
        Args().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0)
    }

    func mkdir(_ name: String, in parent: UInt64 = FUSEProtocol.rootID, mode: UInt32 = 0o755) -> Reply {
        call(.mkdir, node: parent, args: Args().u32(mode).u32(0o022).name(name))
    }

    func release(_ node: UInt64, fh: UInt64, directory: Bool = false) -> Reply {
        call(directory ? .releasedir : .release, node: node, args: Args().u64(fh).u32(0).u32(0).u64(0))
    }

    /// Names of a READDIR(PLUS) payload, with the node IDs of READDIRPLUS entries.
    func readdir(_ node: UInt64, plus: Bool) -> [(name: String, nodeID: UInt64)] {
        let opened = call(.opendir, node: node, args: Args().u32(0).u32(0))
        precondition(opened.error == 0)
        var result: [(String, UInt64)] = []
        var offset: UInt64 = 0
        while true {
            let reply = call(plus ? .readdirplus : .readdir, node: node,
                             args: readArgs(fh: opened.fh, offset: offset, size: 4096))
            precondition(reply.error == 0, "readdir \(reply.error)")
            if reply.payload.isEmpty { break }
            var position = 0
            while position < reply.payload.count {
                let nodeID = plus ? reply.u64(position) : 0
                let dirent = position + (plus ? 128 : 0)
                offset = reply.u64(dirent + 8)
                let length = Int(reply.u32(dirent + 16))
                let name = String(decoding: reply.payload[(dirent + 24)..<(dirent + 24 + length)], as: UTF8.self)
                result.append((name, nodeID))
                position += DirentSize.record(nameLength: length, plus: plus)
            }
        }
        _ = release(node, fh: opened.fh, directory: true)
        return result
    }

    /// How many of this process's descriptors point into this share.
    func descriptorsIntoShare() -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.filter { entry in
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            let count = readlink("/proc/self/fd/" + entry, &buffer, buffer.count - 1)
            guard count > 0 else { return false }
            let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return target == root || target.hasPrefix(root + "/")
        }.count
    }
}

extension Int32 {
    /// A FUSE reply's error field for errno `code`.
    static func fuse(_ code: Int32) -> Int32 { -code }
}
