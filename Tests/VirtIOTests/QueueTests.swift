import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

@Suite struct QueueTests {
    let memory = HeapGuestMemory(size: 0x40000)

    @Test func popsAChainedChainAndReturnsItThroughTheUsedRing() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        var queue = driver.makeQueue()
        try queue.validate(memory: memory)
        #expect(try queue.popAvailable(memory: memory) == nil)

        let placed = try driver.add([.readable([1, 2, 3]), .readable([4, 5]), .writable(4), .writable(6)])
        #expect(queue.hasAvailable(memory: memory))
        let chain = try #require(try queue.popAvailable(memory: memory))
        #expect(chain.head == placed.head)
        #expect(chain.readable.count == 2 && chain.writable.count == 2)
        #expect(chain.readableLength == 5 && chain.writableLength == 10)
        #expect(try chain.read(from: memory, count: 5) == [1, 2, 3, 4, 5])
        #expect(try chain.read(from: memory, offset: 2, count: 10) == [3, 4, 5])
        // A write spanning both writable buffers, and one that does not fit wholly.
        #expect(try chain.write(Array(10..<17), to: memory, offset: 1) == 7)
        #expect(try driver.written(placed, count: 10) == [0, 10, 11, 12, 13, 14, 15, 16, 0, 0])
        #expect(try chain.write(Array(repeating: 9, count: 20), to: memory) == 10)

        try queue.addUsed(head: chain.head, length: 10, memory: memory)
        #expect(try driver.takeUsed() == [.init(head: UInt32(placed.head), length: 10)])
        #expect(try driver.usedIndex() == 1)
        #expect(try queue.popAvailable(memory: memory) == nil)
    }

    @Test func popsAnIndirectChain() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x1000))
        var queue = driver.makeQueue()
        let placed = try driver.addIndirect([.readable([7, 7]), .readable([8]), .writable(16)])
        let chain = try #require(try queue.popAvailable(memory: memory))
        #expect(chain.head == placed.head)
        #expect(chain.readable.map(\.length) == [2, 1])
        #expect(chain.writable.map(\.length) == [16])
        #expect(try chain.read(from: memory, count: 3) == [7, 7, 8])
        #expect(chain.writable[0].address == placed.writable[0].address)
    }

    @Test func indicesWrapPast65535() throws {
        let start: UInt16 = 65530
        let driver = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x1000), startIndex: start)
        var queue = driver.makeQueue()
        for round in 0..<20 {
            let placed = try driver.add([.readable([UInt8(round)]), .writable(2)])
            let chain = try #require(try queue.popAvailable(memory: memory))
            #expect(try chain.read(from: memory, count: 1) == [UInt8(round)])
            try queue.addUsed(head: chain.head, length: UInt32(round), memory: memory)
            #expect(try driver.takeUsed() == [.init(head: UInt32(placed.head), length: UInt32(round))])
        }
        #expect(queue.nextAvailable == start &+ 20)
        #expect(queue.nextUsed == 14)
        #expect(try driver.usedIndex() == 14)
    }

    @Test func consumesSeveralPublishedChainsInOrder() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        var queue = driver.makeQueue()
        let heads = try (0..<3).map { i in try driver.add([.readable([UInt8(i)])]).head }
        var seen: [UInt16] = []
        while let chain = try queue.popAvailable(memory: memory) { seen.append(chain.head) }
        #expect(seen == heads)
        // undoPop gives the last chain back.
        queue.undoPop()
        #expect(try queue.popAvailable(memory: memory)?.head == heads[2])
    }

    @Test func honoursAvailableNoInterruptWithoutEventIndex() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x1000))
        var queue = driver.makeQueue()
        try driver.add([.writable(1)])
        let chain = try #require(try queue.popAvailable(memory: memory))
        try queue.addUsed(head: chain.head, length: 0, memory: memory)
        do { let notify = queue.needsNotification(memory: memory); #expect(notify) }
        try driver.setAvailableFlags(RingFlag.availableNoInterrupt)
        do { let notify = queue.needsNotification(memory: memory); #expect(!notify) }

        // Device-side suppression of kicks: used.flags.
        try queue.setNotifications(enabled: false, memory: memory)
        #expect(try driver.usedFlags() == RingFlag.usedNoNotify)
        try driver.add([.writable(1)])
        #expect(try queue.setNotifications(enabled: true, memory: memory), "a chain is already waiting")
        #expect(try driver.usedFlags() == 0)
    }

    @Test func honoursUsedEventWithEventIndex() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        var queue = driver.makeQueue(eventIndex: true)
        func complete() throws {
            try driver.add([.writable(1)])
            let chain = try #require(try queue.popAvailable(memory: memory))
            try queue.addUsed(head: chain.head, length: 0, memory: memory)
        }
        try complete()
        do { let notify = queue.needsNotification(memory: memory); #expect(notify) }
        // The driver wants an interrupt only once used entry 2 is written (used idx 3).
        try driver.setUsedEvent(2)
        try complete()  // used idx 2
        do { let notify = queue.needsNotification(memory: memory); #expect(!notify) }
        try complete()  // used idx 3
        do { let notify = queue.needsNotification(memory: memory); #expect(notify) }
        try complete()  // used idx 4: event 2 already passed
        do { let notify = queue.needsNotification(memory: memory); #expect(!notify) }

        // Device-side: avail_event tells the driver which index to kick at.
        try queue.setNotifications(enabled: true, memory: memory)
        #expect(try driver.availableEvent() == queue.nextAvailable)
    }

    @Test func validatesItsConfiguration() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        var queue = driver.makeQueue(maxSize: 16)
        try queue.validate(memory: memory)
        queue.size = 6
        #expect(throws: QueueError.invalidSize(size: 6, max: 16)) { try queue.validate(memory: memory) }
        queue.size = 32
        #expect(throws: QueueError.invalidSize(size: 32, max: 16)) { try queue.validate(memory: memory) }
        queue.size = 0
        #expect(throws: QueueError.self) { try queue.validate(memory: memory) }
        queue.size = 8
        queue.descriptorTable = GuestAddress(0x1008)
        #expect(throws: QueueError.invalidRingAddress(ring: "descriptor table", address: GuestAddress(0x1008))) {
            try queue.validate(memory: memory)
        }
        queue.descriptorTable = driver.descriptorTable
        queue.usedRing = GuestAddress(0x40000 - 8)
        #expect(throws: QueueError.self) { try queue.validate(memory: memory) }
        queue.usedRing = GuestAddress(UInt64.max - 3)
        #expect(throws: QueueError.self) { try queue.validate(memory: memory) }
    }

    @Test func unreadyQueueRefusesWork() throws {
        var queue = Queue(maxSize: 8)
        #expect(throws: QueueError.notReady) { _ = try queue.popAvailable(memory: memory) }
        #expect(throws: QueueError.notReady) { try queue.addUsed(head: 0, length: 0, memory: memory) }
        #expect(!queue.hasAvailable(memory: memory))
        #expect(!queue.isBroken, "not ready is not broken")
    }
}
