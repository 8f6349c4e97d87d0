// Descriptors: FORGET, RELEASE and limits leave no fd behind.

import Foundation
import Glibc
import Testing

@testable import FUSE

@Suite struct ResourceTests {
    @Test func forgetAndBatchForgetCloseInodeDescriptors() throws {
        let share = try Share()
        for index in 0..<50 { makeFile(share.path("f\(index)")) }
        let baseline = share.descriptorsIntoShare()
        var nodes: [UInt64] = []
        for index in 0..<50 {
            let entry = share.lookup("f\(index)")
            #expect(entry.error == 0)
            nodes.append(entry.nodeID)
            _ = share.lookup("f\(index)")  // second lookup: same node, count 2
        }
        #expect(share.descriptorsIntoShare() == baseline + 50)
        #expect(share.fs.inodeCount == 50)
        // FORGET one lookup of each of the first 25: still held.
        for node in nodes.prefix(25) { share.forget(node, 1) }
        #expect(share.descriptorsIntoShare() == baseline + 50)
        for node in nodes.prefix(25) { share.forget(node, 1) }
        #expect(share.descriptorsIntoShare() == baseline + 25)
        // BATCH_FORGET the rest (with one unknown node and one over-count, both harmless).
        var args = Args().u32(27).u32(0)
        for node in nodes.suffix(25) { args = args.u64(node).u64(2) }
        args = args.u64(0xffff).u64(1).u64(nodes[30]).u64(5)
        #expect(share.callRaw(requestBytes(FUSEOpcode.batchForget.rawValue, node: 0, unique: 1, args: args.bytes)) == nil)
        #expect(share.descriptorsIntoShare() == baseline)
        #expect(share.fs.inodeCount == 0)
        // Forgetting the root does nothing.
        share.forget(1, 100)
        #expect(share.lookup("f0").error == 0)
    }

    @Test func releaseClosesFileDescriptors() throws {
        let share = try Share()
        makeFile(share.path("f"))
        _ = share.mkdir("d")
        let file = share.lookup("f"), dir = share.lookup("d")
        let baseline = share.descriptorsIntoShare()
        var handles: [UInt64] = []
        for _ in 0..<20 { handles.append(share.open(file.nodeID).fh) }
        let dirHandle = share.call(.opendir, node: dir.nodeID, args: Args().u32(0).u32(0)).fh
        #expect(share.descriptorsIntoShare() == baseline + 21)
        for fh in handles { #expect(share.release(file.nodeID, fh: fh).error == 0) }
        #expect(share.release(dir.nodeID, fh: dirHandle, directory: true).error == 0)
        #expect(share.descriptorsIntoShare() == baseline)
        #expect(share.read(file.nodeID, fh: handles[0], offset: 0, size: 1).error == .fuse(EBADF))
    }

    @Test func failedOperationsLeakNothing() throws {
        let share = try Share()
        let baseline = share.descriptorsIntoShare()
        for _ in 0..<20 {
            _ = share.lookup("missing")
            _ = share.create("../x")
            _ = share.call(.symlink, args: Args().name("s").name("t"))
            _ = share.create("s", flags: O_RDWR | O_CREAT | O_EXCL)  // exists: EEXIST
        }
        let link = share.lookup("s")
        share.forget(link.nodeID, 21)
        #expect(share.fs.inodeCount == 0)
        #expect(share.descriptorsIntoShare() == baseline)
    }

    @Test func inodeLimitRefusesWithENFILE() throws {
        let share = try Share(configuration: PassthroughConfiguration(root: "", maxOpenFiles: 10))
        for index in 0..<12 { makeFile(share.path("f\(index)")) }
        for index in 0..<10 { #expect(share.lookup("f\(index)").error == 0) }
        #expect(share.lookup("f10").error == .fuse(ENFILE))
        #expect(share.lookup("f0").error == 0)  // known inodes still resolve
        #expect(share.fs.inodeCount == 10)
    }
}
