import Testing
@testable import GuestMemory

@Suite struct GuestMemoryTests {
    @Test func roundTripsIntegersLittleEndian() throws {
        let mem = HeapGuestMemory(size: 4096)
        try mem.store(UInt32(0x1122_3344), at: GuestAddress(0x10))
        #expect(try mem.read(count: 4, at: GuestAddress(0x10)) == [0x44, 0x33, 0x22, 0x11])
        #expect(try mem.load(UInt32.self, at: GuestAddress(0x10)) == 0x1122_3344)
        try mem.store(UInt64.max, at: GuestAddress(4096 - 8))
        #expect(try mem.load(UInt64.self, at: GuestAddress(4096 - 8)) == .max)
    }

    @Test func refusesRangesPastTheEnd() {
        let mem = HeapGuestMemory(size: 4096)
        #expect(throws: GuestMemoryError.outOfBounds(address: GuestAddress(4095), length: 2)) {
            try mem.store(UInt16(1), at: GuestAddress(4095))
        }
        #expect(throws: GuestMemoryError.overflow(address: GuestAddress(.max - 1), length: 4)) {
            _ = try mem.read(count: 4, at: GuestAddress(.max - 1))
        }
        // A zero-length access at the very end is inside; one byte further is not.
        #expect(throws: Never.self) { _ = try mem.read(count: 0, at: GuestAddress(4096)) }
        #expect(throws: GuestMemoryError.self) { _ = try mem.read(count: 0, at: GuestAddress(4097)) }
    }

    @Test func rangesMayNotSpanAHoleBetweenRegions() throws {
        let mem = try HeapGuestMemory(regions: [
            GuestRegion(start: GuestAddress(0), size: 0x1000),
            GuestRegion(start: GuestAddress(0x3000), size: 0x1000),
        ])
        try mem.write([1, 2, 3], at: GuestAddress(0x3ffd))
        #expect(try mem.read(count: 3, at: GuestAddress(0x3ffd)) == [1, 2, 3])
        #expect(throws: GuestMemoryError.self) { _ = try mem.read(count: 2, at: GuestAddress(0xfff)) }
        #expect(throws: GuestMemoryError.self) { _ = try mem.read(count: 1, at: GuestAddress(0x2000)) }
        #expect(mem.totalSize == 0x2000)
    }

    /// Kernel images arrive as array slices (one memcpy); other collections go element by
    /// element. Both land the same bytes, and neither writes past its range.
    @Test func writesSlicesAndOtherCollectionsAlike() throws {
        let mem = HeapGuestMemory(size: 64 << 20)
        let image = (0..<(48 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let clock = ContinuousClock()
        let took = try clock.measure { try mem.write(image[16..<(image.count - 16)], at: GuestAddress(0x1000)) }
        #expect(try mem.read(count: 64, at: GuestAddress(0x1000)) == Array(image[16..<80]))
        #expect(try mem.read(count: 1, at: GuestAddress(0x1000 + UInt64(image.count - 32))) == [0])
        #expect(took < .seconds(2), "a 48 MiB slice took \(took): not a contiguous copy")
        try mem.write((1...5).lazy.map { UInt8($0) }, at: GuestAddress(0x10))
        #expect(try mem.read(count: 6, at: GuestAddress(0x10)) == [1, 2, 3, 4, 5, 0])
    }

    @Test func rejectsOverlappingRegions() {
        #expect(throws: GuestMemoryError.self) {
            _ = try HeapGuestMemory(regions: [
                GuestRegion(start: GuestAddress(0), size: 0x2000),
                GuestRegion(start: GuestAddress(0x1000), size: 0x1000),
            ])
        }
    }
}
