import Foundation
import Glibc
import Testing

@testable import FUSE

/// `PassthroughConfiguration.readOnly`: every change is EROFS, reads still work, the share is untouched.
@Suite struct ReadOnlyTests {
    @Test func everyChangeIsRefusedAndReadsStillWork() throws {
        let share = try Share(configuration: PassthroughConfiguration(root: "", readOnly: true))
        try Data("content".utf8).write(to: URL(fileURLWithPath: share.path("f")))
        try FileManager.default.createDirectory(atPath: share.path("d"), withIntermediateDirectories: false)
        let file = share.lookup("f")
        #expect(file.error == 0)
        let node = file.nodeID
        let erofs = Int32.fuse(EROFS)

        #expect(share.create("new").error == erofs)
        #expect(share.mkdir("newdir").error == erofs)
        #expect(share.call(.unlink, args: Args().name("f")).error == erofs)
        #expect(share.call(.rmdir, args: Args().name("d")).error == erofs)
        #expect(share.call(.symlink, args: Args().name("l").name("/etc")).error == erofs)
        #expect(share.call(.link, args: Args().u64(node).name("hard")).error == erofs)
        #expect(share.call(.rename, args: Args().u64(FUSEProtocol.rootID).name("f").name("g")).error == erofs)
        #expect(share.call(.mknod, args: Args().u32(0o10644).u32(0).u32(0).u32(0).name("p")).error == erofs)
        // SETATTR of the mode (valid = FATTR_MODE), SETXATTR, REMOVEXATTR.
        // fuse_setattr_in: valid, padding, fh, size, lock_owner, atime, mtime, ctime, 3 nsecs, mode, 4 more.
        let setattr = Args().u32(1).u32(0).u64(0).u64(0).u64(0).u64(0).u64(0).u64(0).u32(0).u32(0).u32(0).u32(0o600)
            .u32(0).u32(0).u32(0).u32(0)
        #expect(share.call(.setattr, node: node, args: setattr).error == erofs)
        #expect(share.call(.setxattr, node: node, args: Args().u32(1).u32(0).name("user.x").raw([1])).error == erofs)
        #expect(share.call(.removexattr, node: node, args: Args().name("user.x")).error == erofs)
        #expect(share.open(node, flags: O_WRONLY).error == erofs)
        #expect(share.open(node, flags: O_RDONLY | O_TRUNC).error == erofs)
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(W_OK)).u32(0)).error == erofs)

        let opened = share.open(node, flags: O_RDONLY)
        #expect(opened.error == 0)
        #expect(share.read(node, fh: opened.fh, offset: 0, size: 100).payload == Array("content".utf8))
        #expect(share.write(node, fh: opened.fh, offset: 0, data: [1]).error == erofs)
        #expect(share.call(.access, node: node, args: Args().u32(UInt32(R_OK)).u32(0)).error == 0)
        #expect(try String(contentsOfFile: share.path("f"), encoding: .utf8) == "content")
        #expect(try FileManager.default.contentsOfDirectory(atPath: share.root).sorted() == ["d", "f"])
    }
}
