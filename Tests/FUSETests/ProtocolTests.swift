// INIT negotiation, the session state machine, and malformed requests.

import Glibc
import Testing

@testable import FUSE

@Suite struct HandshakeTests {
    @Test func initNegotiatesVersionFlagsAndMaxWrite() throws {
        let share = try Share(initialize: false)
        let offered: UInt32 = 0xffff_ffff
        let reply = share.call(.initialize, args: Args().u32(7).u32(36).u32(65536).u32(offered).u32(0)
            .raw([UInt8](repeating: 0, count: 44)))
        #expect(reply.error == 0)
        #expect(reply.payload.count == 64)
        #expect(reply.u32(0) == 7)
        #expect(reply.u32(4) == 36)  // min(guest, ours)
        #expect(reply.u32(8) == 65536)  // max_readahead: the guest's smaller value
        let flags = UInt64(reply.u32(12))
        #expect(flags & FUSEProtocol.doReaddirplus != 0)
        #expect(flags & FUSEProtocol.maxPages != 0)
        #expect(flags & (1 << 16) == 0)  // no writeback cache
        #expect(flags & (1 << 1) == 0)  // no POSIX locks
        #expect(reply.u32(20) == 1 << 20)  // max_write
        #expect(UInt16(truncatingIfNeeded: reply.u32(28)) == 256)  // max_pages
    }

    @Test func operationsBeforeInitFailWithEIO() throws {
        let share = try Share(initialize: false)
        #expect(share.call(.getattr, args: Args().u32(0).u32(0).u64(0)).error == .fuse(EIO))
        #expect(share.lookup("x").error == .fuse(EIO))
    }

    @Test func secondInitIsRefusedUntilDestroy() throws {
        let share = try Share()
        let initArgs = Args().u32(7).u32(31).u32(4096).u32(0)
        #expect(share.call(.initialize, args: initArgs).error == .fuse(EIO))
        #expect(share.call(.destroy).error == 0)
        #expect(share.call(.getattr, args: Args().u32(0).u32(0).u64(0)).error == .fuse(EIO))
        // The old 16-byte fuse_init_in (before 7.36) is accepted too.
        let again = share.call(.initialize, args: initArgs)
        #expect(again.error == 0)
        #expect(again.u32(4) == 31)
    }

    @Test func initRefusesOtherMajorAndAncientMinor() throws {
        let share = try Share(initialize: false)
        #expect(share.call(.initialize, args: Args().u32(6).u32(38).u32(0).u32(0)).error == .fuse(EPROTO))
        #expect(share.call(.initialize, args: Args().u32(8).u32(0).u32(0).u32(0)).error == .fuse(EPROTO))
        #expect(share.call(.initialize, args: Args().u32(7).u32(8).u32(0).u32(0)).error == .fuse(EPROTO))
        #expect(share.call(.initialize, args: Args().u32(7)).error == .fuse(EINVAL))
    }

    @Test func destroyReleasesEverything() throws {
        let share = try Share()
        makeFile(share.path("f"))
        let entry = share.lookup("f")
        #expect(share.open(entry.nodeID).error == 0)
        #expect(share.fs.inodeCount == 1 && share.fs.openFileCount == 1)
        #expect(share.call(.destroy).error == 0)
        #expect(share.fs.inodeCount == 0 && share.fs.openFileCount == 0)
        #expect(share.descriptorsIntoShare() == 1)  // only the root
    }
}

@Suite struct MalformedRequestTests {
    @Test func shortHeaderGetsEINVAL() throws {
        let share = try Share()
        let full = requestBytes(FUSEOpcode.getattr.rawValue, node: 1, unique: 77, args: [])
        let reply = try #require(share.callRaw(Array(full.prefix(20))))
        #expect(reply.error == .fuse(EINVAL))
        #expect(reply.unique == 77)
        #expect(reply.length == 16)
        #expect(try #require(share.callRaw([])).error == .fuse(EINVAL))
    }

    @Test func lengthThatDisagreesWithTheBufferGetsEINVAL() throws {
        let share = try Share()
        let args = Args().u32(0).u32(0).u64(0).bytes
        for length: UInt32 in [0, 40, 55, 57, 0xffff_ffff] {
            let bytes = requestBytes(FUSEOpcode.getattr.rawValue, node: 1, unique: 5, args: args, length: length)
            #expect(share.callRaw(bytes)?.error == .fuse(EINVAL), "len \(length)")
        }
    }

    @Test func missingOrTrailingArgumentsGetEINVAL() throws {
        let share = try Share()
        #expect(share.call(.getattr, args: Args().u32(0)).error == .fuse(EINVAL))
        #expect(share.call(.getattr, args: Args().u32(0).u32(0).u64(0).u32(1)).error == .fuse(EINVAL))
        #expect(share.call(.open, node: 1, args: Args()).error == .fuse(EINVAL))
        #expect(share.call(.setattr, args: Args().u32(1)).error == .fuse(EINVAL))
        #expect(share.call(.rename, args: Args().u64(1).name("a")).error == .fuse(EINVAL))
        #expect(share.call(.symlink, args: Args().name("a")).error == .fuse(EINVAL))
    }

    @Test func namesMustBeTerminatedSingleComponents() throws {
        let share = try Share()
        #expect(share.call(.lookup, args: Args().raw(Array("abc".utf8))).error == .fuse(EINVAL))
        #expect(share.call(.lookup, args: Args().raw([0])).error == .fuse(EINVAL))
        #expect(share.call(.lookup, args: Args().raw(Array("a\0b\0".utf8))).error == .fuse(EINVAL))
        #expect(share.lookup("etc/passwd").error == .fuse(EINVAL))
        #expect(share.lookup("..").error == .fuse(EINVAL))
        #expect(share.lookup(".").error == .fuse(EINVAL))
        #expect(share.lookup(String(repeating: "n", count: 256)).error == .fuse(ENAMETOOLONG))
        #expect(share.mkdir("a/b").error == .fuse(EINVAL))
        #expect(share.create("../escape").error == .fuse(EINVAL))
    }

    @Test func hugeSizesAreRefusedOrClamped() throws {
        let share = try Share()
        let created = share.create("f")
        #expect(created.error == 0)
        let fh = created.u64(128)
        // WRITE whose size disagrees with the data it carries, or exceeds max_write.
        let lying = Args().u64(fh).u64(0).u32(0xffff_ffff).u32(0).u64(0).u32(0).u32(0).raw([1, 2, 3])
        #expect(share.call(.write, node: created.nodeID, args: lying).error == .fuse(EINVAL))
        // READ of 4 GiB is clamped to the reply buffer.
        _ = share.write(created.nodeID, fh: fh, offset: 0, data: [UInt8](repeating: 7, count: 10000))
        let read = share.call(.read, node: created.nodeID, args: share.readArgs(fh: fh, offset: 0, size: .max),
                              replyCapacity: 16 + 4096)
        #expect(read.error == 0 && read.payload.count == 4096)
        // BATCH_FORGET claiming more entries than it carries.
        let forget = requestBytes(FUSEOpcode.batchForget.rawValue, node: 0, unique: 9,
                                  args: Args().u32(0x1000_0000).u32(0).u64(2).u64(1).bytes)
        #expect(share.callRaw(forget) == nil)
        #expect(share.fs.inodeCount == 1)
        // SETXATTR with a value above 64 KiB, and offsets past off_t.
        let big = [UInt8](repeating: 1, count: 70000)
        #expect(share.call(.setxattr, node: created.nodeID, args: Args().u32(70000).u32(0).name("user.x").raw(big))
            .error == .fuse(E2BIG))
        #expect(share.read(created.nodeID, fh: fh, offset: .max, size: 10).error == .fuse(EINVAL))
        // Handles that were never opened.
        #expect(share.read(created.nodeID, fh: 999, offset: 0, size: 10).error == .fuse(EBADF))
        #expect(share.call(.getattr, node: 12345, args: Args().u32(0).u32(0).u64(0)).error == .fuse(ESTALE))
    }

    @Test func unknownAndUnsupportedOpcodesGetENOSYS() throws {
        let share = try Share()
        let bytes = requestBytes(999, node: 1, unique: 3, args: [1, 2, 3])
        #expect(share.callRaw(bytes)?.error == .fuse(ENOSYS))
        #expect(share.call(.getlk, args: Args().u64(0)).error == .fuse(ENOSYS))
        #expect(share.call(.ioctl, args: Args()).error == .fuse(ENOSYS))
    }

    @Test func replyBufferTooSmallIsReported() throws {
        let share = try Share()
        var reply = [UInt8](repeating: 0, count: 8)
        let request = requestBytes(FUSEOpcode.statfs.rawValue, node: 1, unique: 1, args: [])
        let outcome = request.withUnsafeBytes { input in
            reply.withUnsafeMutableBytes { output in
                share.server.handle(FUSERequestBuffers([input]), reply: FUSEReplyBuffers([output]))
            }
        }
        #expect(outcome == .replyBufferTooSmall)
        // Room for the header but not the payload: ERANGE.
        let small = share.call(.statfs, replyCapacity: 40)
        #expect(small.error == .fuse(ERANGE))
    }

    @Test func deviceNumbersRoundTrip() {
        for (major, minor) in [(0, 0), (1, 3), (8, 17), (259, 65537), (4095, 1_048_575)] {
            let host = (UInt64(major & 0xfff) << 8) | (UInt64(major & ~0xfff) << 32) | UInt64(minor & 0xff)
                | (UInt64(minor & ~0xff) << 12)
            let wire = encodeDevice(host)
            #expect(wire == UInt32((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)))
            #expect(decodeDevice(wire) == host)
        }
    }
}

func makeFile(_ path: String, _ contents: String = "") {
    let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "create \(path)")
    _ = contents.withCString { Glibc.write(fd, $0, strlen($0)) }
    close(fd)
}
