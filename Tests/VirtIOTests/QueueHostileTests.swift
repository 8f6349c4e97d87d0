import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

/// Chains and rings a hostile guest can write. Each is refused with a precise error, the queue
/// is marked broken, and nothing traps.
@Suite struct QueueHostileTests {
    let memory = HeapGuestMemory(size: 0x40000)
    let driver: FakeVirtqueueDriver
    var queue: Queue

    init() throws {
        driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        queue = driver.makeQueue()
    }

    /// Pops, expects `expected`, then checks the queue stays broken.
    mutating func expectBroken(_ expected: QueueError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { _ = try queue.popAvailable(memory: memory) }
        #expect(queue.brokenReason == expected, sourceLocation: sourceLocation)
        #expect(throws: QueueError.broken(reason: expected.description), sourceLocation: sourceLocation) {
            _ = try queue.popAvailable(memory: memory)
        }
        #expect(throws: QueueError.self, sourceLocation: sourceLocation) {
            try queue.addUsed(head: 0, length: 0, memory: memory)
        }
        do { let notify = queue.needsNotification(memory: memory); #expect(!notify) }
    }

    @Test mutating func headIndexOutOfRange() throws {
        try driver.publish(head: 8)
        expectBroken(.descriptorIndexOutOfRange(index: 8, tableSize: 8))
    }

    @Test mutating func nextIndexOutOfRange() throws {
        let data = driver.allocate(4)
        try driver.writeDescriptor(.init(address: data.rawValue, length: 4, flags: DescriptorFlag.next, next: 200), at: 0)
        try driver.publish(head: 0)
        expectBroken(.descriptorIndexOutOfRange(index: 200, tableSize: 8))
    }

    @Test mutating func bufferPastTheEndOfMemory() throws {
        try driver.writeDescriptor(.init(address: 0x40000 - 4, length: 8, flags: 0, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.bufferOutsideMemory(address: GuestAddress(0x40000 - 4), length: 8))
    }

    @Test mutating func bufferAddressPlusLengthOverflows() throws {
        try driver.writeDescriptor(.init(address: UInt64.max - 2, length: 16, flags: 0, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.bufferOutsideMemory(address: GuestAddress(UInt64.max - 2), length: 16))
    }

    @Test mutating func loopInTheChain() throws {
        let data = driver.allocate(4)
        try driver.writeDescriptor(.init(address: data.rawValue, length: 4, flags: DescriptorFlag.next, next: 1), at: 0)
        try driver.writeDescriptor(.init(address: data.rawValue, length: 4, flags: DescriptorFlag.next, next: 0), at: 1)
        try driver.publish(head: 0)
        expectBroken(.chainLoop(head: 0))
    }

    @Test mutating func selfLoopInsideAnIndirectTable() throws {
        let table = driver.allocate(32, alignment: 16)
        let data = driver.allocate(4)
        try driver.writeDescriptor(.init(address: data.rawValue, length: 4, flags: DescriptorFlag.next, next: 1), at: 0, table: table)
        try driver.writeDescriptor(.init(address: data.rawValue, length: 4, flags: DescriptorFlag.next, next: 1), at: 1, table: table)
        try driver.writeDescriptor(.init(address: table.rawValue, length: 32, flags: DescriptorFlag.indirect, next: 0), at: 3)
        try driver.publish(head: 3)
        expectBroken(.chainLoop(head: 3))
    }

    @Test mutating func nestedIndirect() throws {
        let inner = driver.allocate(16, alignment: 16)
        let outer = driver.allocate(16, alignment: 16)
        try driver.writeDescriptor(.init(address: inner.rawValue, length: 16, flags: DescriptorFlag.indirect, next: 0), at: 0, table: outer)
        try driver.writeDescriptor(.init(address: outer.rawValue, length: 16, flags: DescriptorFlag.indirect, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.nestedIndirect)
    }

    @Test mutating func zeroLengthIndirectTable() throws {
        let table = driver.allocate(16, alignment: 16)
        try driver.writeDescriptor(.init(address: table.rawValue, length: 0, flags: DescriptorFlag.indirect, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.invalidIndirectLength(length: 0))
    }

    @Test mutating func indirectTableLengthNotAMultipleOf16() throws {
        let table = driver.allocate(32, alignment: 16)
        try driver.writeDescriptor(.init(address: table.rawValue, length: 17, flags: DescriptorFlag.indirect, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.invalidIndirectLength(length: 17))
    }

    @Test mutating func indirectTableOutsideMemory() throws {
        try driver.writeDescriptor(.init(address: 0x40000 - 16, length: 32, flags: DescriptorFlag.indirect, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.bufferOutsideMemory(address: GuestAddress(0x40000 - 16), length: 32))
    }

    /// An indirect table of `entries` 4-byte buffers chained in order; returns it and the buffer.
    mutating func writeChainedTable(entries: Int) throws -> (table: GuestAddress, data: GuestAddress) {
        let table = driver.allocate(UInt32(entries) * 16, alignment: 16)
        let data = driver.allocate(4)
        for i in 0..<entries {
            try driver.writeDescriptor(
                .init(address: data.rawValue, length: 4, flags: i < entries - 1 ? DescriptorFlag.next : 0, next: UInt16(i + 1)),
                at: UInt16(i), table: table)
        }
        return (table, data)
    }

    @Test mutating func indirectTableWithMoreEntriesThanTheQueue() throws {
        // Nine chained entries for a queue of eight: the old parser walked them all.
        let (table, _) = try writeChainedTable(entries: 9)
        try driver.writeDescriptor(.init(address: table.rawValue, length: 9 * 16, flags: DescriptorFlag.indirect, next: 0), at: 0)
        try driver.publish(head: 0)
        expectBroken(.indirectTableTooLarge(length: 9 * 16, queueSize: 8))
    }

    @Test func hugeIndirectTableIsRefusedBeforeItIsRead() throws {
        // A 4 GiB table in 16 GiB of claimed RAM, none of it backed: refused from its length
        // alone (the old parser went on to read it and would walk up to 268 million entries).
        let large = LargeRegionMemory(backing: memory, claimedSize: 16 << 30)
        let bigDriver = try FakeVirtqueueDriver(memory: large, size: 8, base: GuestAddress(0x1000))
        var bigQueue = bigDriver.makeQueue()
        try bigDriver.writeDescriptor(.init(address: 1 << 32, length: 0xffff_fff0, flags: DescriptorFlag.indirect, next: 0), at: 0)
        try bigDriver.publish(head: 0)
        #expect(throws: QueueError.indirectTableTooLarge(length: 0xffff_fff0, queueSize: 8)) {
            _ = try bigQueue.popAvailable(memory: large)
        }
    }

    @Test mutating func directDescriptorsPlusAnIndirectTableLongerThanTheQueue() throws {
        // Three direct buffers, then a full table of eight: eleven buffers for a queue of eight.
        let (table, data) = try writeChainedTable(entries: 8)
        for i in 0..<3 {
            try driver.writeDescriptor(.init(address: data.rawValue, length: 4, flags: DescriptorFlag.next, next: UInt16(i + 1)), at: UInt16(i))
        }
        try driver.writeDescriptor(.init(address: table.rawValue, length: 8 * 16, flags: DescriptorFlag.indirect, next: 0), at: 3)
        try driver.publish(head: 0)
        expectBroken(.chainLongerThanQueue(head: 0, queueSize: 8))
    }

    @Test mutating func indirectTableAsLongAsTheQueueIsAccepted() throws {
        let placed = try driver.addIndirect((0..<8).map { _ in .readable([1]) })
        let chain = try queue.popAvailable(memory: memory)
        #expect(chain?.head == placed.head && chain?.readable.count == 8)
    }

    @Test mutating func indirectWithNextFlag() throws {
        let table = driver.allocate(16, alignment: 16)
        try driver.writeDescriptor(
            .init(address: table.rawValue, length: 16, flags: DescriptorFlag.indirect | DescriptorFlag.next, next: 1), at: 0)
        try driver.publish(head: 0)
        expectBroken(.indirectWithNext)
    }

    @Test mutating func indirectWithoutTheFeature() throws {
        queue.indirectEnabled = false
        try driver.addIndirect([.readable([1])])
        expectBroken(.indirectNotNegotiated)
    }

    @Test mutating func readableAfterWritable() throws {
        let placed = try driver.add([.writable(4), .readable([1])])
        expectBroken(.readableAfterWritable(head: placed.head))
    }

    @Test mutating func availableIndexRunsAheadByMoreThanTheQueueSize() throws {
        try driver.setAvailableIndex(9)
        expectBroken(.availableIndexJump(available: 9, next: 0, size: 8))
    }

    @Test mutating func chainLongerThan4GiB() throws {
        // Regions claim 16 GiB; only the ring area is backed (the parser never reads buffers).
        let large = LargeRegionMemory(backing: memory, claimedSize: 16 << 30)
        let bigDriver = try FakeVirtqueueDriver(memory: large, size: 4, base: GuestAddress(0x1000))
        var bigQueue = bigDriver.makeQueue()
        for i in 0..<3 {
            try bigDriver.writeDescriptor(
                .init(address: UInt64(i) << 32, length: .max, flags: i < 2 ? DescriptorFlag.next : 0, next: UInt16(i + 1)),
                at: UInt16(i))
        }
        try bigDriver.publish(head: 0)
        #expect(throws: QueueError.chainTooLong(head: 0)) { _ = try bigQueue.popAvailable(memory: large) }
        #expect(bigQueue.isBroken)
    }

    @Test mutating func deviceReturningAForeignHeadIsRefused() throws {
        try driver.add([.writable(1)])
        _ = try queue.popAvailable(memory: memory)
        #expect(throws: QueueError.usedHeadOutOfRange(head: 8, size: 8)) {
            try queue.addUsed(head: 8, length: 0, memory: memory)
        }
    }

    @Test mutating func resetClearsTheBrokenState() throws {
        try driver.publish(head: 8)
        #expect(throws: QueueError.self) { _ = try queue.popAvailable(memory: memory) }
        queue.reset()
        #expect(!queue.isBroken && !queue.isReady && queue.size == 8 && queue.nextAvailable == 0)
    }
}

/// Guest memory whose single region claims more than is backed: accesses past the backing fail.
final class LargeRegionMemory: GuestMemory {
    let backing: HeapGuestMemory
    let regions: [GuestRegion]

    init(backing: HeapGuestMemory, claimedSize: UInt64) {
        self.backing = backing
        self.regions = [GuestRegion(start: GuestAddress(0), size: claimedSize)]
    }

    /// The backing's base; only the lookup below would use it, and this memory replaces that.
    func hostAddress(ofRegion index: Int) -> UnsafeMutableRawPointer { backing.hostAddress(ofRegion: index) }

    func withUnsafeMutableBytes<R>(
        at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        try backing.withUnsafeMutableBytes(at: address, count: count, body)
    }
}
