// Guest RAM from a vhost-user frontend's fds: a region the fd does not hold is refused up front
// (a mapping past the end of a memfd raises SIGBUS on the first access).

import Foundation
import Glibc
import Testing
import VhostUser

@Suite struct MappedGuestMemoryTests {
    /// A shared-memory file of `size` bytes (what QEMU's memory-backend-memfd hands over).
    func sharedFile(size: Int) throws -> Int32 {
        let path = "/dev/shm/mapped-guest-memory-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        unlink(path)
        try #require(ftruncate(fd, off_t(size)) == 0)
        return fd
    }

    @Test func regionLargerThanItsFdIsRefused() throws {
        let fd = try sharedFile(size: 4096)
        defer { close(fd) }
        let region = VhostUserMemoryRegion(guestAddress: 0, size: 8192, userAddress: 0x7000_0000, mmapOffset: 0)
        #expect(throws: VhostUserError.self) { _ = try MappedGuestMemory([region], fds: [fd]) }
        let offset = VhostUserMemoryRegion(guestAddress: 0, size: 4096, userAddress: 0x7000_0000, mmapOffset: 4096)
        #expect(throws: VhostUserError.self) { _ = try MappedGuestMemory([offset], fds: [fd]) }
    }

    @Test func regionWithinItsFdMapsAndWorks() throws {
        let fd = try sharedFile(size: 8192)
        defer { close(fd) }
        let region = VhostUserMemoryRegion(guestAddress: 0x1000, size: 4096, userAddress: 0x7000_0000, mmapOffset: 4096)
        let memory = try MappedGuestMemory([region], fds: [fd])
        try memory.withUnsafeMutableBytes(at: .init(0x1ffc), count: 4) { $0.copyBytes(from: [1, 2, 3, 4]) }
        var back = [UInt8](repeating: 0, count: 4)
        #expect(pread(fd, &back, 4, 8188) == 4 && back == [1, 2, 3, 4])
    }
}
