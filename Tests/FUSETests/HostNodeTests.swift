// Device nodes and FIFOs in the share (an image layer's /dev entries, or a guest's MKNOD): CREATE
// and OPEN never open them on the host, and never block the FUSE thread.

import Foundation
import Glibc
import Synchronization
import Testing

@testable import FUSE

@Suite(.serialized) struct HostNodeTests {
    /// mknod_in: mode, rdev, umask, padding, name.
    func mknod(_ share: Share, _ name: String, mode: UInt32) -> Reply {
        share.call(.mknod, args: Args().u32(mode).u32(0).u32(0).u32(0).name(name))
    }

    /// Runs `call` on its own thread; if it has not returned within two seconds the test fails and
    /// `unblock` runs (it opens the FIFO's other end), so a blocking server cannot hang the suite.
    func withoutBlocking(_ call: @escaping @Sendable () -> Reply, unblock: () -> Void,
                         sourceLocation: SourceLocation = #_sourceLocation) -> Reply {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Reply?>(nil)
        Thread.detachNewThread {
            let reply = call()
            result.withLock { $0 = reply }
            done.signal()
        }
        if done.wait(timeout: .now() + 2) == .timedOut {
            Issue.record("the FUSE request blocked", sourceLocation: sourceLocation)
            unblock()
            done.wait()
        }
        return result.withLock { $0 } ?? Reply.missing
    }

    @Test func createOverAFIFOMadeByMknodRefusesWithoutBlocking() throws {
        let share = try Share()
        #expect(mknod(share, "fifo", mode: UInt32(S_IFIFO) | 0o666).error == 0)
        nonisolated(unsafe) let unsafeShare = share
        let reply = withoutBlocking({ unsafeShare.create("fifo", flags: O_WRONLY | O_CREAT) }) {
            let reader = Glibc.open(share.path("fifo"), O_RDONLY | O_NONBLOCK)
            if reader >= 0 { close(reader) }
        }
        #expect(reply.error == .fuse(EPERM))
        #expect(share.fs.openFileCount == 0)
    }

    @Test func createOverAHostDeviceNodeRefuses() throws {
        let share = try Share()
        // /dev/null's numbers (1:3), made on the host as containerd unpacks an image layer.
        try #require(Glibc.mknod(share.path("null"), S_IFCHR | 0o666, 0x103) == 0, "mknod needs root")
        let inodes = share.fs.inodeCount
        #expect(share.create("null", flags: O_RDWR | O_CREAT).error == .fuse(EPERM))
        #expect(share.create("null", flags: O_RDWR | O_CREAT | O_EXCL).error == .fuse(EEXIST))
        #expect(share.fs.openFileCount == 0)
        // Nothing was left looked up by the refused CREATE.
        #expect(share.fs.inodeCount == inodes)
    }

    @Test func openOfADeviceNodeOrFIFORefuses() throws {
        let share = try Share()
        try #require(Glibc.mknod(share.path("null"), S_IFCHR | 0o666, 0x103) == 0, "mknod needs root")
        #expect(mkfifo(share.path("fifo"), 0o666) == 0)
        for name in ["null", "fifo"] {
            let node = share.lookup(name)
            #expect(node.error == 0)
            #expect(share.open(node.nodeID, flags: O_RDONLY).error == .fuse(EPERM))
        }
        #expect(share.fs.openFileCount == 0)
    }

    @Test func createOfAnExistingRegularFileStillOpensIt() throws {
        let share = try Share()
        makeFile(share.path("f"), "old contents")
        let created = share.create("f", flags: O_RDWR | O_CREAT | O_TRUNC)
        #expect(created.error == 0)
        #expect(created.entrySize == 0)
        #expect(share.create("f", flags: O_RDWR | O_CREAT | O_EXCL).error == .fuse(EEXIST))
        let fresh = share.create("new", flags: O_RDWR | O_CREAT | O_EXCL)
        #expect(fresh.error == 0)
        // The guest did not ask for O_NONBLOCK, so the host file is blocking again after the check.
        let flags = share.fs.table.withLock { $0.file(fresh.u64(128)) }.map { fcntl($0.fd, F_GETFL) } ?? -1
        #expect(flags >= 0 && flags & O_NONBLOCK == 0)
    }
}
