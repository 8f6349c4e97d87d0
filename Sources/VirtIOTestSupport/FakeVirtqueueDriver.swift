import GuestMemory
import Synchronization
import VirtIO

/// A fake virtio driver for one split queue, in the spirit of rust-vmm's `MockSplitQueue`:
/// it lays out the three rings and a data area in guest memory, writes descriptor chains
/// (direct, chained, indirect) and available-ring entries as a guest driver would, and reads
/// back the used ring. Raw writers let tests build hostile rings the helpers would never make.
public final class FakeVirtqueueDriver {
    public let memory: any GuestMemory
    public let size: UInt16
    public let descriptorTable: GuestAddress
    public let availableRing: GuestAddress
    public let usedRing: GuestAddress
    public let dataStart: GuestAddress
    public let dataEnd: GuestAddress

    /// The driver's free-running available index (what it last published).
    public private(set) var availableIndex: UInt16
    private var usedSeen: UInt16
    private var nextDescriptor: UInt16 = 0
    private var dataNext: UInt64

    /// One buffer of a chain the driver built.
    public enum Segment: Equatable, Sendable {
        /// A device-readable buffer holding these bytes.
        case readable([UInt8])
        /// A device-writable buffer of this many bytes (zeroed).
        case writable(UInt32)
    }

    /// A chain as the driver placed it: head index and each buffer's address.
    public struct Chain: Sendable {
        public var head: UInt16
        public var readable: [(address: GuestAddress, length: UInt32)]
        public var writable: [(address: GuestAddress, length: UInt32)]
    }

    /// One used-ring element.
    public struct UsedElement: Equatable, Sendable {
        public var head: UInt32
        public var length: UInt32
        public init(head: UInt32, length: UInt32) {
            self.head = head
            self.length = length
        }
    }

    /// Lays out a queue of `size` at `base` followed by `dataSize` bytes of buffers; both ring
    /// indices start at `startIndex` (to test wrap-around without 65536 round trips).
    public convenience init(
        memory: some GuestMemory, size: UInt16, base: GuestAddress, dataSize: UInt64 = 0x10000,
        startIndex: UInt16 = 0
    ) throws {
        let available = base.adding(SplitQueueLayout.descriptorTableSize(size))
        let used = GuestAddress((available.rawValue + SplitQueueLayout.availableRingSize(size) + 3) & ~3)
        let data = GuestAddress((used.rawValue + SplitQueueLayout.usedRingSize(size) + 15) & ~15)
        try self.init(
            memory: memory, size: size, descriptorTable: base, availableRing: available, usedRing: used,
            dataStart: data, dataSize: dataSize, startIndex: startIndex)
    }

    /// A queue whose rings another party placed (e.g. a recorded vhost-user frontend), with a
    /// data area of its own. The rings are zeroed except for the two indices.
    public init(
        memory: some GuestMemory, size: UInt16, descriptorTable: GuestAddress, availableRing: GuestAddress,
        usedRing: GuestAddress, dataStart: GuestAddress, dataSize: UInt64, startIndex: UInt16 = 0
    ) throws {
        self.memory = memory
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
        self.dataStart = dataStart
        dataEnd = dataStart.adding(dataSize)
        dataNext = dataStart.rawValue
        availableIndex = startIndex
        usedSeen = startIndex
        try memory.zero(at: descriptorTable, count: Int(SplitQueueLayout.descriptorTableSize(size)))
        try memory.zero(at: availableRing, count: Int(SplitQueueLayout.availableRingSize(size)))
        try memory.zero(at: usedRing, count: Int(SplitQueueLayout.usedRingSize(size)))
        try memory.zero(at: dataStart, count: Int(dataSize))
        try memory.store(startIndex, at: availableRing.adding(2))
        try memory.store(startIndex, at: usedRing.adding(2))
    }

    /// The device-side queue as a transport would configure it: ready, at this layout.
    public func makeQueue(maxSize: UInt16? = nil, eventIndex: Bool = false, indirect: Bool = true) -> Queue {
        var queue = Queue(maxSize: maxSize ?? size)
        queue.size = size
        queue.descriptorTable = descriptorTable
        queue.availableRing = availableRing
        queue.usedRing = usedRing
        queue.eventIndexEnabled = eventIndex
        queue.indirectEnabled = indirect
        queue.isReady = true
        queue.restore(nextAvailable: availableIndex, nextUsed: usedSeen)
        return queue
    }

    // MARK: building chains

    /// Places `segments` as a chain of direct descriptors and publishes its head.
    @discardableResult
    public func add(_ segments: [Segment], publish: Bool = true) throws -> Chain {
        let indices = (0..<segments.count).map { _ in takeDescriptorIndex() }
        var chain = Chain(head: indices.first ?? 0, readable: [], writable: [])
        for (position, segment) in segments.enumerated() {
            let descriptor = try place(segment, into: &chain, next: position + 1 < segments.count ? indices[position + 1] : nil)
            try writeDescriptor(descriptor, at: indices[position])
        }
        if publish { try self.publish(head: chain.head) }
        return chain
    }

    /// Places `segments` in an indirect table referenced by one descriptor, and publishes it.
    @discardableResult
    public func addIndirect(_ segments: [Segment], publish: Bool = true) throws -> Chain {
        let table = allocate(UInt32(segments.count) * 16, alignment: 16)
        var chain = Chain(head: takeDescriptorIndex(), readable: [], writable: [])
        for (position, segment) in segments.enumerated() {
            let next = position + 1 < segments.count ? UInt16(position + 1) : nil
            let descriptor = try place(segment, into: &chain, next: next)
            try writeDescriptor(descriptor, at: UInt16(position), table: table)
        }
        let head = Descriptor(
            address: table.rawValue, length: UInt32(segments.count * 16), flags: DescriptorFlag.indirect, next: 0)
        try writeDescriptor(head, at: chain.head)
        if publish { try self.publish(head: chain.head) }
        return chain
    }

    private func place(_ segment: Segment, into chain: inout Chain, next: UInt16?) throws -> Descriptor {
        var flags: UInt16 = next == nil ? 0 : DescriptorFlag.next
        let address: GuestAddress
        let length: UInt32
        switch segment {
        case .readable(let bytes):
            length = UInt32(bytes.count)
            address = allocate(length)
            try memory.write(bytes, at: address)
            chain.readable.append((address, length))
        case .writable(let count):
            length = count
            address = allocate(length)
            try memory.zero(at: address, count: Int(count))
            flags |= DescriptorFlag.write
            chain.writable.append((address, length))
        }
        return Descriptor(address: address.rawValue, length: length, flags: flags, next: next ?? 0)
    }

    private func takeDescriptorIndex() -> UInt16 {
        defer { nextDescriptor = (nextDescriptor + 1) % size }
        return nextDescriptor
    }

    /// Bump-allocates `length` bytes of the data area, starting over when it is used up.
    public func allocate(_ length: UInt32, alignment: UInt64 = 8) -> GuestAddress {
        var start = (dataNext + alignment - 1) & ~(alignment - 1)
        if start + UInt64(length) > dataEnd.rawValue { start = dataStart.rawValue }
        precondition(start + UInt64(length) <= dataEnd.rawValue, "fake driver: buffer larger than data area")
        dataNext = start + UInt64(length)
        return GuestAddress(start)
    }

    // MARK: raw ring access

    /// Writes descriptor `index` of `table` (the queue's own table by default), verbatim.
    public func writeDescriptor(_ descriptor: Descriptor, at index: UInt16, table: GuestAddress? = nil) throws {
        let at = (table ?? descriptorTable).adding(UInt64(index) * 16)
        try memory.store(descriptor.address, at: at)
        try memory.store(descriptor.length, at: at.adding(8))
        try memory.store(descriptor.flags, at: at.adding(12))
        try memory.store(descriptor.next, at: at.adding(14))
    }

    /// Puts `head` in the next available slot and publishes the new index.
    public func publish(head: UInt16) throws {
        try memory.store(head, at: availableRing.adding(4 + 2 * UInt64(availableIndex % size)))
        atomicMemoryFence(ordering: .releasing)
        availableIndex &+= 1
        try memory.store(availableIndex, at: availableRing.adding(2))
    }

    /// Overwrites avail.idx with any value (hostile tests).
    public func setAvailableIndex(_ index: UInt16) throws {
        availableIndex = index
        try memory.store(index, at: availableRing.adding(2))
    }

    /// avail.flags (VIRTQ_AVAIL_F_NO_INTERRUPT).
    public func setAvailableFlags(_ flags: UInt16) throws {
        try memory.store(flags, at: availableRing)
    }

    /// used_event, at the end of the available ring (EVENT_IDX).
    public func setUsedEvent(_ index: UInt16) throws {
        try memory.store(index, at: availableRing.adding(4 + 2 * UInt64(size)))
    }

    public func usedIndex() throws -> UInt16 { try memory.load(at: usedRing.adding(2)) }
    public func usedFlags() throws -> UInt16 { try memory.load(at: usedRing) }
    /// avail_event, at the end of the used ring (EVENT_IDX).
    public func availableEvent() throws -> UInt16 { try memory.load(at: usedRing.adding(4 + 8 * UInt64(size))) }

    /// The used elements the device added since the last call.
    public func takeUsed() throws -> [UsedElement] {
        let index = try usedIndex()
        var result: [UsedElement] = []
        while usedSeen != index {
            let element = usedRing.adding(4 + 8 * UInt64(usedSeen % size))
            result.append(UsedElement(head: try memory.load(at: element), length: try memory.load(at: element.adding(4))))
            usedSeen &+= 1
        }
        return result
    }

    /// The first `count` bytes the device wrote into the writable buffers of `chain`.
    public func written(_ chain: Chain, count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        for buffer in chain.writable where result.count < count {
            let n = min(Int(buffer.length), count - result.count)
            result += try memory.read(count: n, at: buffer.address)
        }
        return result
    }
}
