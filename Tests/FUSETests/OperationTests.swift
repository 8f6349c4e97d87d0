// Round trips of every supported operation against a real temp directory.

import CHost
import Foundation
import Glibc
import Testing

@testable import FUSE

@Suite struct OperationTests {
    @Test func lookupAndGetattr() throws {
        let share = try Share()
        makeFile(share.path("hello"), "hello world")
        let entry = share.lookup("hello")
        #expect(entry.error == 0)
        #expect(entry.nodeID > 1)
        #expect(entry.entrySize == 11)
        #expect(entry.entryMode & UInt32(Glibc.S_IFMT) == UInt32(Glibc.S_IFREG))
        #expect(share.lookup("hello").nodeID == entry.nodeID)  // same host inode, same node ID
        let attr = share.call(.getattr, node: entry.nodeID, args: Args().u32(0).u32(0).u64(0))
        #expect(attr.error == 0 && attr.attrSize == 11)
        #expect(share.lookup("missing").error == .fuse(ENOENT))
        let root = share.call(.getattr, node: 1, args: Args().u32(0).u32(0).u64(0))
        #expect(root.attrMode & UInt32(Glibc.S_IFMT) == UInt32(Glibc.S_IFDIR))
    }

    @Test func createWriteReadWithScatteredBuffers() throws {
        let share = try Share()
        let created = share.create("data", mode: 0o100640, flags: O_RDWR | O_CREAT | O_EXCL, uid: 1000, gid: 1001)
        #expect(created.error == 0)
        #expect(created.entryUID == 1000 && created.entryGID == 1001)
        #expect(created.entryMode & 0o7777 == 0o640)
        let fh = created.u64(128)
        let data = (0..<10000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        // WRITE whose data spans three request segments.
        let request = requestBytes(FUSEOpcode.write.rawValue, node: created.nodeID, unique: 1,
                                   args: share.readArgs(fh: fh, offset: 100, size: UInt32(data.count)).raw(data).bytes)
        var replyBytes = [UInt8](repeating: 0, count: 64)
        let outcome = request.withUnsafeBytes { all in
            replyBytes.withUnsafeMutableBytes { out in
                share.server.handle(
                    FUSERequestBuffers([
                        UnsafeRawBufferPointer(rebasing: all[0..<50]),
                        UnsafeRawBufferPointer(rebasing: all[50..<4000]),
                        UnsafeRawBufferPointer(rebasing: all[4000...]),
                    ]), reply: FUSEReplyBuffers([out]))
            }
        }
        #expect(outcome == .replied(24))
        #expect(Reply(Array(replyBytes[..<24])).error == 0)
        #expect(Reply(Array(replyBytes[..<24])).u32(0) == 10000)
        // READ into a reply split in segments of 10, 1000 and 20000 bytes.
        let readRequest = requestBytes(FUSEOpcode.read.rawValue, node: created.nodeID, unique: 2,
                                       args: share.readArgs(fh: fh, offset: 100, size: 10000).bytes)
        var a = [UInt8](repeating: 0, count: 10), b = [UInt8](repeating: 0, count: 1000)
        var c = [UInt8](repeating: 0, count: 20000)
        let readOutcome = readRequest.withUnsafeBytes { input in
            a.withUnsafeMutableBytes { pa in
                b.withUnsafeMutableBytes { pb in
                    c.withUnsafeMutableBytes { pc in
                        share.server.handle(FUSERequestBuffers([input]), reply: FUSEReplyBuffers([pa, pb, pc]))
                    }
                }
            }
        }
        #expect(readOutcome == .replied(16 + 10000))
        let joined = Array((a + b + c)[16..<(16 + 10000)])
        #expect(joined == data)
        #expect(Reply(a + b).error == 0)
        // Host sees the same bytes; read past EOF returns short.
        let host = try Data(contentsOf: URL(fileURLWithPath: share.path("data")))
        #expect(Array(host[100...]) == data)
        #expect(share.read(created.nodeID, fh: fh, offset: 10050, size: 100).payload.count == 50)
        #expect(share.call(.flush, node: created.nodeID, args: Args().u64(fh).u32(0).u32(0).u64(0)).error == 0)
        #expect(share.call(.fsync, node: created.nodeID, args: Args().u64(fh).u32(1).u32(0)).error == 0)
        #expect(share.release(created.nodeID, fh: fh).error == 0)
        #expect(share.create("data", flags: O_RDWR | O_CREAT | O_EXCL).error == .fuse(EEXIST))
    }

    @Test func creationsGetExactModesAndInheritSetgidGroups() throws {
        let share = try Share()
        // The host process's umask (022 here) must not strip what the guest asked for.
        let open = share.create("open", mode: 0o100666)
        #expect(open.entryMode & 0o7777 == 0o666)
        var st = stat()
        #expect(stat(share.path("open"), &st) == 0 && st.st_mode & 0o7777 == 0o666)
        #expect(share.mkdir("shared", mode: 0o777).entryMode & 0o7777 == 0o777)
        // A setgid directory hands its group to what is created in it, whoever the caller is.
        #expect(mkdir(share.path("team"), 0o2775) == 0 && chown(share.path("team"), 0, 700) == 0)
        chmod(share.path("team"), 0o2775)
        let team = share.lookup("team")
        let file = share.create("file", in: team.nodeID, uid: 1000, gid: 1000)
        #expect(file.entryUID == 1000 && file.entryGID == 700)
        let sub = share.call(.mkdir, node: team.nodeID, args: Args().u32(0o755).u32(0).name("sub"), uid: 1000, gid: 1000)
        #expect(sub.entryGID == 700 && sub.entryMode & 0o7777 == 0o2755)
    }

    @Test func openFlagsAndTypes() throws {
        let share = try Share()
        makeFile(share.path("f"), "abc")
        _ = share.mkdir("d")
        let file = share.lookup("f"), dir = share.lookup("d")
        let opened = share.open(file.nodeID, flags: O_RDONLY)
        #expect(opened.error == 0)
        #expect(share.write(file.nodeID, fh: opened.fh, offset: 0, data: [1]).error == .fuse(EBADF))
        #expect(share.open(dir.nodeID).error == .fuse(EISDIR))
        #expect(share.call(.opendir, node: file.nodeID, args: Args().u32(0).u32(0)).error == .fuse(ENOTDIR))
        // O_TRUNC is honoured (atomic_o_trunc).
        let truncating = share.open(file.nodeID, flags: O_WRONLY | O_TRUNC)
        #expect(truncating.error == 0)
        #expect(share.call(.getattr, node: file.nodeID, args: Args().u32(0).u32(0).u64(0)).attrSize == 0)
    }

    @Test func mkdirReaddirAndReaddirplus() throws {
        let share = try Share()
        let dir = share.mkdir("dir", mode: 0o750)
        #expect(dir.error == 0)
        #expect(dir.entryMode == UInt32(Glibc.S_IFDIR) | 0o750)
        var expected = Set<String>([".", ".."])
        for index in 0..<300 {
            let name = "file-\(index)-" + String(repeating: "x", count: index % 40)
            expected.insert(name)
            #expect(share.create(name, in: dir.nodeID).error == 0)
        }
        let plain = share.readdir(dir.nodeID, plus: false)
        #expect(Set(plain.map(\.name)) == expected)
        #expect(plain.count == expected.count)
        let before = share.fs.inodeCount
        let plus = share.readdir(dir.nodeID, plus: true)
        #expect(Set(plus.map(\.name)) == expected)
        for entry in plus {
            if entry.name == "." || entry.name == ".." {
                #expect(entry.nodeID == 0)
            } else {
                #expect(entry.nodeID == share.lookup(entry.name, in: dir.nodeID).nodeID)
            }
        }
        // Each readdirplus entry and each lookup above counted once: forgetting both drops them.
        for entry in plus where entry.nodeID != 0 { share.forget(entry.nodeID, 2) }
        #expect(share.fs.inodeCount == before)
    }

    @Test func symlinkReadlinkLinkUnlinkRmdir() throws {
        let share = try Share()
        let link = share.call(.symlink, args: Args().name("l").name("/etc/passwd"))
        #expect(link.error == 0)
        #expect(link.entryMode & UInt32(Glibc.S_IFMT) == UInt32(Glibc.S_IFLNK))
        let target = share.call(.readlink, node: link.nodeID)
        #expect(String(decoding: target.payload, as: UTF8.self) == "/etc/passwd")
        makeFile(share.path("f"), "x")
        let file = share.lookup("f")
        let hard = share.call(.link, args: Args().u64(file.nodeID).name("g"))
        #expect(hard.error == 0)
        #expect(hard.nodeID == file.nodeID)
        #expect(hard.u32(104) == 2)  // nlink
        #expect(share.call(.unlink, args: Args().name("f")).error == 0)
        #expect(access(share.path("f"), F_OK) != 0 && access(share.path("g"), F_OK) == 0)
        _ = share.mkdir("d")
        #expect(share.call(.unlink, args: Args().name("d")).error == .fuse(EISDIR))
        #expect(share.call(.rmdir, args: Args().name("d")).error == 0)
        #expect(share.call(.rmdir, args: Args().name("d")).error == .fuse(ENOENT))
        #expect(share.call(.link, args: Args().u64(share.mkdir("d2").nodeID).name("d3")).error == .fuse(EPERM))
    }

    @Test func renameAndRename2() throws {
        let share = try Share()
        makeFile(share.path("a"), "A")
        makeFile(share.path("b"), "B")
        let sub = share.mkdir("sub")
        #expect(share.call(.rename, args: Args().u64(sub.nodeID).name("a").name("a2")).error == 0)
        #expect(access(share.path("sub/a2"), F_OK) == 0)
        let noreplace = Args().u64(1).u32(ks_fuse_rename_noreplace).u32(0).name("b")
        #expect(share.call(.rename2, node: sub.nodeID, args: noreplace.name("b")).error == .fuse(ENOENT))
        makeFile(share.path("sub/b"), "B2")
        #expect(share.call(.rename2, node: sub.nodeID, args: noreplace.name("b")).error == .fuse(EEXIST))
        let exchange = Args().u64(1).u32(ks_fuse_rename_exchange).u32(0).name("a2").name("b")
        #expect(share.call(.rename2, node: sub.nodeID, args: exchange).error == 0)
        #expect(try String(contentsOfFile: share.path("b"), encoding: .utf8) == "A")
        #expect(try String(contentsOfFile: share.path("sub/a2"), encoding: .utf8) == "B")
        let bogus = Args().u64(1).u32(1 << 20).u32(0).name("b").name("c")
        #expect(share.call(.rename2, args: bogus).error == .fuse(EINVAL))
    }

    @Test func setattrModeOwnerSizeTimes() throws {
        let share = try Share()
        makeFile(share.path("f"), "0123456789")
        let file = share.lookup("f")
        func setattr(_ valid: UInt32, fh: UInt64 = 0, size: UInt64 = 0, mtime: UInt64 = 0, mode: UInt32 = 0,
                     uid: UInt32 = 0, gid: UInt32 = 0) -> Reply
        {
            share.call(.setattr, node: file.nodeID, args: Args().u32(valid).u32(0).u64(fh).u64(size).u64(0)
                .u64(0).u64(mtime).u64(0).u32(0).u32(0).u32(0).u32(mode).u32(0).u32(uid).u32(gid).u32(0))
        }
        #expect(setattr(1 << 0, mode: 0o1711).attrMode & 0o7777 == 0o1711)
        let owned = setattr((1 << 1) | (1 << 2), uid: 123, gid: 456)
        #expect(owned.error == 0 && owned.attrUID == 123)
        #expect(setattr(1 << 3, size: 4).attrSize == 4)
        #expect(setattr(1 << 5, mtime: 1_000_000).attrMtime == 1_000_000)
        let opened = share.open(file.nodeID)
        #expect(setattr((1 << 3) | (1 << 6), fh: opened.fh, size: 2).attrSize == 2)
        #expect(setattr(1 << 3, size: .max).error == .fuse(EINVAL))
        var st = stat()
        #expect(stat(share.path("f"), &st) == 0 && st.st_size == 2 && st.st_uid == 123 && st.st_gid == 456)
        let dir = share.mkdir("d")
        let dirTruncate = share.call(.setattr, node: dir.nodeID, args: Args().u32(1 << 3).raw([UInt8](repeating: 0, count: 84)))
        #expect(dirTruncate.error == .fuse(EISDIR))
    }

    @Test func extendedAttributes() throws {
        let share = try Share()
        makeFile(share.path("f"))
        let file = share.lookup("f")
        let value = Array("some value".utf8)
        #expect(share.call(.setxattr, node: file.nodeID, args: Args().u32(UInt32(value.count)).u32(0).name("user.k").raw(value)).error == 0)
        let size = share.call(.getxattr, node: file.nodeID, args: Args().u32(0).u32(0).name("user.k"))
        #expect(size.error == 0 && size.u32(0) == UInt32(value.count))
        let got = share.call(.getxattr, node: file.nodeID, args: Args().u32(100).u32(0).name("user.k"))
        #expect(got.payload == value)
        #expect(share.call(.getxattr, node: file.nodeID, args: Args().u32(3).u32(0).name("user.k")).error == .fuse(ERANGE))
        let list = share.call(.listxattr, node: file.nodeID, args: Args().u32(1000).u32(0))
        #expect(String(decoding: list.payload, as: UTF8.self).split(separator: "\0").contains("user.k"))
        let create = Args().u32(1).u32(UInt32(ks_fuse_xattr_create)).name("user.k").raw([1])
        #expect(share.call(.setxattr, node: file.nodeID, args: create).error == .fuse(EEXIST))
        #expect(share.call(.removexattr, node: file.nodeID, args: Args().name("user.k")).error == 0)
        #expect(share.call(.getxattr, node: file.nodeID, args: Args().u32(100).u32(0).name("user.k")).error == .fuse(ENODATA))
        // overlayfs metadata stays out of guest reach.
        let overlay = Args().u32(1).u32(0).name("trusted.overlay.redirect").raw([47])
        #expect(share.call(.setxattr, node: file.nodeID, args: overlay).error == .fuse(EPERM))
    }

    @Test func statfsLseekFallocateAccess() throws {
        let share = try Share()
        let statfs = share.call(.statfs)
        #expect(statfs.error == 0 && statfs.payload.count == 80 && statfs.u32(44) == 255)  // namelen
        let created = share.create("sparse")
        let fh = created.u64(128)
        #expect(share.call(.fallocate, node: created.nodeID, args: Args().u64(fh).u64(1 << 20).u64(4096).u32(0).u32(0)).error == 0)
        #expect(share.call(.getattr, node: created.nodeID, args: Args().u32(0).u32(0).u64(0)).attrSize == (1 << 20) + 4096)
        // Data at 1 MiB and a hole before it (where the host file system keeps holes at all).
        #expect(share.write(created.nodeID, fh: fh, offset: 1 << 20, data: [UInt8](repeating: 1, count: 4096)).error == 0)
        let data = share.call(.lseek, node: created.nodeID, args: Args().u64(fh).u64(0).u32(UInt32(ks_fuse_seek_data)).u32(0))
        #expect(data.error == 0 && data.u64(0) <= 1 << 20)
        let hole = share.call(.lseek, node: created.nodeID, args: Args().u64(fh).u64(1 << 20).u32(UInt32(ks_fuse_seek_hole)).u32(0))
        #expect(hole.error == 0 && hole.u64(0) >= (1 << 20) + 4096)
        let past = share.call(.lseek, node: created.nodeID, args: Args().u64(fh).u64(1 << 30).u32(UInt32(ks_fuse_seek_data)).u32(0))
        #expect(past.error == .fuse(ENXIO))
        #expect(share.call(.lseek, node: created.nodeID, args: Args().u64(fh).u64(0).u32(1).u32(0)).error == .fuse(EINVAL))
        // PUNCH_HOLE | KEEP_SIZE keeps the size.
        #expect(share.call(.fallocate, node: created.nodeID, args: Args().u64(fh).u64(0).u64(4096).u32(3).u32(0)).error == 0)
        #expect(share.call(.getattr, node: created.nodeID, args: Args().u32(0).u32(0).u64(0)).attrSize == (1 << 20) + 4096)
        // ACCESS for a non-owner on a 0640 file.
        makeFile(share.path("private"))
        chmod(share.path("private"), 0o640)
        chown(share.path("private"), 10, 20)
        let node = share.lookup("private").nodeID
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(R_OK)).u32(0), uid: 10, gid: 99).error == 0)
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(R_OK)).u32(0), uid: 11, gid: 20).error == 0)
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(W_OK)).u32(0), uid: 11, gid: 20).error == .fuse(EACCES))
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(R_OK)).u32(0), uid: 11, gid: 21).error == .fuse(EACCES))
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(X_OK)).u32(0)).error == .fuse(EACCES))
    }

    @Test func mknodCreatesFifosAndWhiteoutsButNotDevices() throws {
        let share = try Share()
        let fifo = share.call(.mknod, args: Args().u32(UInt32(Glibc.S_IFIFO) | 0o600).u32(0).u32(0).u32(0).name("fifo"))
        #expect(fifo.error == 0 && fifo.entryMode & UInt32(Glibc.S_IFMT) == UInt32(Glibc.S_IFIFO))
        #expect(share.open(fifo.nodeID).error == .fuse(EPERM))  // never opened on the host
        let whiteout = share.call(.mknod, args: Args().u32(UInt32(Glibc.S_IFCHR)).u32(0).u32(0).u32(0).name("wh"))
        #expect(whiteout.error == 0)
        let mem = share.call(.mknod, args: Args().u32(UInt32(Glibc.S_IFCHR) | 0o666).u32((1 << 8) | 1).u32(0).u32(0).name("mem"))
        #expect(mem.error == .fuse(EPERM))
        #expect(share.open(whiteout.nodeID).error == .fuse(EPERM))
    }
}
