import SystemSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct HeapTests {
    /// Resident pages of this process, in bytes (/proc/self/statm's second field).
    static func resident() throws -> Int {
        let fields = try readWholeTextFile("/proc/self/statm").split(separator: " ")
        return try #require(Int(fields[1])) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Freed memory below a live block stays resident until `trim` gives it back: glibc only
    /// shortens an arena from its top by itself.
    @Test func trimReturnsFreedMemoryBelowALiveBlock() throws {
        let count = 512
        let size = 64 << 10  // below the mmap threshold: from an arena
        var blocks: [UnsafeMutableRawPointer] = []
        blocks.reserveCapacity(count)
        for _ in 0..<count {
            let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            block.initializeMemory(as: UInt8.self, repeating: 0xa5, count: size)
            blocks.append(block)
        }
        // The last block, allocated after the others, keeps the arena's top in use.
        let pin = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { pin.deallocate() }
        let full = try Self.resident()
        blocks.forEach { $0.deallocate() }
        let freed = try Self.resident()
        Heap.trim()
        let trimmed = try Self.resident()
        let total = count * size  // 32 MiB
        #expect(full - freed < total / 4, "freeing alone returned \(full - freed) of \(total) bytes")
        #expect(freed - trimmed > total / 2, "trim returned \(freed - trimmed) of \(total) bytes")
    }
}
