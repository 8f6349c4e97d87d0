// Guest RAM's discard (free page reporting): the host pages go away (mincore says not resident)
// and the range reads as zeros; a partial page at either end is zeroed, never dropped.

import GuestMemory
import Testing
import VMM

#if canImport(Glibc)
import Glibc
#endif

@Suite struct MmapGuestMemoryTests {
    /// How many of the `count` pages from `address` are resident in this process.
    static func residentPages(_ memory: MmapGuestMemory, at address: UInt64, count: Int) -> Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var vector = [UInt8](repeating: 0, count: count)
        let rc = mincore(memory.hostAddress(ofRegion: 0) + Int(address), count * page, &vector)
        return rc == 0 ? vector.filter { $0 & 1 != 0 }.count : -1
    }

    @Test func discardDropsWholePagesAndZeroesTheEdges() throws {
        let memory = try MmapGuestMemory(regions: [GuestRegion(start: GuestAddress(0), size: 8 << 20)])
        try memory.write([UInt8](repeating: 0x5a, count: 4 << 20), at: GuestAddress(0))
        #expect(Self.residentPages(memory, at: 2 << 20, count: 512) == 512)

        try memory.discard(at: GuestAddress(2 << 20), count: 2 << 20)
        #expect(Self.residentPages(memory, at: 2 << 20, count: 512) == 0)
        #expect(try memory.read(count: 2 << 20, at: GuestAddress(2 << 20)).allSatisfy { $0 == 0 })
        #expect(try memory.read(count: 4096, at: GuestAddress((2 << 20) - 4096)).allSatisfy { $0 == 0x5a })

        // 100 bytes into a page to 100 bytes into another: the edges are zeroed, the whole page
        // between them dropped, and the bytes around untouched.
        try memory.discard(at: GuestAddress(0x1064), count: 0x2000)
        #expect(try memory.read(count: 0x2000, at: GuestAddress(0x1064)).allSatisfy { $0 == 0 })
        #expect(try memory.read(count: 0x64, at: GuestAddress(0x1000)).allSatisfy { $0 == 0x5a })
        #expect(try memory.read(count: 16, at: GuestAddress(0x3064)).allSatisfy { $0 == 0x5a })

        #expect(throws: GuestMemoryError.self) { try memory.discard(at: GuestAddress((8 << 20) - 4096), count: 8192) }
        #expect(try memory.read(count: 4096, at: GuestAddress((8 << 20) - 4096)).allSatisfy { $0 == 0 })
    }
}
