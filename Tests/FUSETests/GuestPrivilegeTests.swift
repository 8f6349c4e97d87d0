// What a guest must not plant on host files: setuid/setgid bits and security.*/trusted.* xattrs.

import Foundation
import CHost
import Glibc
import Testing

@testable import FUSE

@Suite struct GuestPrivilegeTests {
    func hostMode(_ share: Share, _ name: String) -> mode_t {
        var st = stat()
        return stat(share.path(name), &st) == 0 ? st.st_mode & 0o7777 : 0o7777
    }

    /// fuse_setattr_in with only the mode valid.
    func chmod(_ share: Share, _ node: UInt64, _ mode: UInt32) -> Reply {
        share.call(.setattr, node: node, args: Args().u32(1 << 0).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0)
            .u32(0).u32(0).u32(0).u32(mode).u32(0).u32(0).u32(0).u32(0))
    }

    @Test func setattrStripsSetuidAndSetgid() throws {
        let share = try Share()
        makeFile(share.path("f"))
        let file = share.lookup("f")
        let reply = chmod(share, file.nodeID, 0o6755)
        #expect(reply.error == 0 && reply.attrMode & 0o7777 == 0o755)
        #expect(hostMode(share, "f") == 0o755)
        let dir = share.mkdir("d", mode: 0o755)
        #expect(chmod(share, dir.nodeID, 0o6775).attrMode & 0o7777 == 0o2775, "setgid stays on a directory")
    }

    @Test func createMknodAndMkdirStripSetuid() throws {
        let share = try Share()
        #expect(share.create("c", mode: 0o106755).entryMode & 0o7777 == 0o755)
        #expect(hostMode(share, "c") == 0o755)
        let node = share.call(.mknod, args: Args().u32(0o106755).u32(0).u32(0).u32(0).name("n"))
        #expect(node.error == 0 && hostMode(share, "n") == 0o755)
        #expect(share.mkdir("d", mode: 0o7775).entryMode & 0o7777 == 0o3775)
        #expect(hostMode(share, "d") == 0o3775)
    }

    @Test func securityAndTrustedXattrsAreRefused() throws {
        let share = try Share()
        makeFile(share.path("f"))
        let file = share.lookup("f")
        func set(_ name: String) -> Int32 {
            share.call(.setxattr, node: file.nodeID, args: Args().u32(1).u32(0).name(name).raw([1])).error
        }
        #expect(set("security.evil") == .fuse(EPERM))
        #expect(set("trusted.evil") == .fuse(EPERM))
        #expect(share.call(.removexattr, node: file.nodeID, args: Args().name("security.selinux")).error == .fuse(EPERM))
        #expect(set("user.fine") == 0)
        var value: UInt8 = 0
        #expect(ks_fuse_getxattr(AT_FDCWD, share.path("f"), "security.evil", &value, 1) < 0)
        #expect(ks_fuse_getxattr(AT_FDCWD, share.path("f"), "trusted.evil", &value, 1) < 0)
    }
}
