// Escape attempts by a hostile guest: every one refused, or confined to the share.

import Foundation
import Glibc
import Testing

@testable import FUSE

@Suite struct ConfinementTests {
    @Test func dotDotPastTheRootIsRefused() throws {
        let share = try Share()
        #expect(share.lookup("..").error == .fuse(EINVAL))
        let sub = share.mkdir("sub")
        #expect(share.lookup("..", in: sub.nodeID).error == .fuse(EINVAL))
        #expect(share.call(.rename, args: Args().u64(1).name("sub").name("..")).error == .fuse(EINVAL))
        #expect(share.call(.symlink, args: Args().name("..").name("x")).error == .fuse(EINVAL))
    }

    @Test func absoluteSymlinkToEtcStaysInsideTheShare() throws {
        let share = try Share()
        #expect(symlink("/etc", share.path("etc")) == 0)
        let link = share.lookup("etc")
        #expect(link.error == 0)
        #expect(link.entryMode & UInt32(Glibc.S_IFMT) == UInt32(Glibc.S_IFLNK))
        // The server never walks through it: children of a symlink do not exist here.
        #expect(share.lookup("passwd", in: link.nodeID).error == .fuse(ENOTDIR))
        #expect(share.open(link.nodeID).error == .fuse(ELOOP))
        #expect(share.call(.opendir, node: link.nodeID, args: Args().u32(0).u32(0)).error == .fuse(ENOTDIR))
        #expect(share.create("x", in: link.nodeID).error == .fuse(ENOTDIR))
        #expect(share.mkdir("x", in: link.nodeID).error == .fuse(ENOTDIR))
        // READLINK hands the text to the guest, whose kernel resolves it inside its own view.
        #expect(String(decoding: share.call(.readlink, node: link.nodeID).payload, as: UTF8.self) == "/etc")
        // The guest's view of /etc is the share's etc: it looks "etc" up again below its own root.
        #expect(mkdir(share.path("realetc"), 0o755) == 0)
        let realetc = share.lookup("realetc")
        #expect(share.lookup("passwd", in: realetc.nodeID).error == .fuse(ENOENT))
        // SETATTR and xattrs on the link do not reach /etc.
        var before = stat()
        stat("/etc", &before)
        let chmod = share.call(.setattr, node: link.nodeID,
                               args: Args().u32(1).raw([UInt8](repeating: 0, count: 64)).u32(0o777).raw([UInt8](repeating: 0, count: 16)))
        #expect(chmod.error == .fuse(EOPNOTSUPP))
        var after = stat()
        stat("/etc", &after)
        #expect(before.st_mode == after.st_mode)
        #expect(share.call(.setxattr, node: link.nodeID, args: Args().u32(1).u32(0).name("user.x").raw([1])).error == .fuse(EPERM))
    }

    @Test func symlinkSwappedInBetweenLookupsIsNotFollowed() throws {
        let share = try Share()
        #expect(mkdir(share.path("d"), 0o755) == 0)
        makeFile(share.path("d/inside"), "in")
        let dir = share.lookup("d")
        #expect(share.lookup("inside", in: dir.nodeID).error == 0)
        // Swap: the directory goes, a symlink to the host's /etc takes its name.
        #expect(rename(share.path("d"), share.path("d.old")) == 0)
        #expect(symlink("/etc", share.path("d")) == 0)
        // The old node still means the old directory (by fd, not by path): no passwd there.
        #expect(share.lookup("passwd", in: dir.nodeID).error == .fuse(ENOENT))
        #expect(share.lookup("inside", in: dir.nodeID).error == 0)
        // A fresh lookup finds the symlink, which the server does not walk.
        let swapped = share.lookup("d")
        #expect(swapped.nodeID != dir.nodeID)
        #expect(share.lookup("passwd", in: swapped.nodeID).error == .fuse(ENOTDIR))
        // Creating through the old node lands in the old directory, inside the share.
        #expect(share.create("new", in: dir.nodeID).error == 0)
        #expect(access(share.path("d.old/new"), F_OK) == 0)
        #expect(access("/etc/new", F_OK) != 0)
    }

    @Test func symlinkAsLastComponentOfCreateIsNotFollowed() throws {
        let share = try Share()
        let outside = share.root + "-outside"
        defer { unlink(outside) }
        #expect(symlink(outside, share.path("trap")) == 0)
        // O_CREAT through a dangling symlink would create the target on the host.
        let created = share.create("trap", flags: O_RDWR | O_CREAT)
        #expect(created.error == .fuse(ELOOP))
        #expect(access(outside, F_OK) != 0)
        #expect(share.mkdir("trap").error == .fuse(EEXIST))
    }

    @Test func linkCanOnlyNameShareInodes() throws {
        let share = try Share()
        // LINK's source is a node ID: one never handed out is refused.
        #expect(share.call(.link, args: Args().u64(0xdead_beef).name("passwd")).error == .fuse(ESTALE))
        // A symlink to a host file is linked as the symlink itself, never as its target.
        #expect(symlink("/etc/passwd", share.path("pw")) == 0)
        var before = stat()
        #expect(stat("/etc/passwd", &before) == 0)
        let link = share.lookup("pw")
        let hard = share.call(.link, args: Args().u64(link.nodeID).name("pw2"))
        #expect(hard.error == 0)
        var st = stat()
        #expect(lstat(share.path("pw2"), &st) == 0 && st.st_mode & Glibc.S_IFMT == Glibc.S_IFLNK)
        var after = stat()
        #expect(stat("/etc/passwd", &after) == 0 && after.st_nlink == before.st_nlink)
    }

    @Test func procMagicLinksAreRefused() throws {
        let share = try Share()
        // A plain symlink to /proc/self/fd/N is just text to us.
        #expect(symlink("/proc/self/fd/0", share.path("fd0")) == 0)
        let text = share.lookup("fd0")
        #expect(share.open(text.nodeID).error == .fuse(ELOOP))
        #expect(share.lookup("x", in: text.nodeID).error == .fuse(ENOTDIR))
        // A real procfs inside the share (a careless host bind mount): crossing into it is refused,
        // so magic links (/proc/<pid>/fd/N, root, cwd, exe) and /proc/<pid>/mem stay out of reach.
        #expect(mkdir(share.path("proc"), 0o755) == 0)
        guard mount("proc", share.path("proc"), "proc", 0, nil) == 0 else {
            Issue.record("mount proc: errno \(errno)")
            return
        }
        defer { umount2(share.path("proc"), Int32(MNT_DETACH)) }
        #expect(share.lookup("proc").error == .fuse(EPERM))
        #expect(share.readdir(1, plus: true).first { $0.name == "proc" }?.nodeID == 0)
        // Same for sysfs.
        #expect(mkdir(share.path("sys"), 0o755) == 0)
        guard mount("sysfs", share.path("sys"), "sysfs", 0, nil) == 0 else {
            Issue.record("mount sysfs: errno \(errno)")
            return
        }
        defer { umount2(share.path("sys"), Int32(MNT_DETACH)) }
        #expect(share.lookup("sys").error == .fuse(EPERM))
    }

    @Test func openThroughProcPathsDoesNotFollowSymlinks() throws {
        // The O_PATH fd of a symlink is never reopened through /proc/self/fd (which would follow it).
        let share = try Share()
        #expect(symlink("/etc/shadow", share.path("shadow")) == 0)
        let link = share.lookup("shadow")
        #expect(share.open(link.nodeID, flags: O_RDONLY).error == .fuse(ELOOP))
        let truncate = share.call(.setattr, node: link.nodeID, args: Args().u32(1 << 3).raw([UInt8](repeating: 0, count: 84)))
        #expect(truncate.error == .fuse(EINVAL))
        #expect(share.call(.getxattr, node: link.nodeID, args: Args().u32(100).u32(0).name("user.x")).error == .fuse(ENODATA))
    }
}
