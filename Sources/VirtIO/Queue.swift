import GuestMemory
import Synchronization

/// The device side of one split virtqueue (virtio 1.x, 2.7).
///
/// The transport writes the configuration (size, ring addresses, ready); the device pops
/// validated chains and returns them through the used ring. Guest-controlled values are never
/// trusted: a malformed chain or ring marks the queue broken, and every later call throws
/// `.broken` until `reset()`. Indices are free-running 16-bit counters that wrap at 65536.
public struct Queue: Sendable {
    /// Largest size the device accepts (QueueNumMax).
    public let maxSize: UInt16

    // Configuration, written by the transport before the queue is ready.
    public var size: UInt16
    public var isReady = false
    public var descriptorTable = GuestAddress(0)
    public var availableRing = GuestAddress(0)
    public var usedRing = GuestAddress(0)
    /// VIRTIO_RING_F_EVENT_IDX negotiated.
    public var eventIndexEnabled = false
    /// VIRTIO_RING_F_INDIRECT_DESC negotiated.
    public var indirectEnabled = false

    /// Next available-ring slot the device will consume.
    public private(set) var nextAvailable: UInt16 = 0
    /// Next used-ring slot the device will fill.
    public private(set) var nextUsed: UInt16 = 0
    /// Why the queue broke, if it did.
    public private(set) var brokenReason: QueueError?
    /// The used index at the last interrupt decision (EVENT_IDX only).
    private var signalledUsed: UInt16?

    public init(maxSize: UInt16) {
        self.maxSize = maxSize
        self.size = maxSize
    }

    public var isBroken: Bool { brokenReason != nil }

    /// Back to the state after device reset: not ready, default size, indices zero.
    public mutating func reset() {
        self = Queue(maxSize: maxSize)
    }

    /// Sets the ring positions, as vhost-user SET_VRING_BASE or a restore does.
    public mutating func restore(nextAvailable: UInt16, nextUsed: UInt16) {
        self.nextAvailable = nextAvailable
        self.nextUsed = nextUsed
        signalledUsed = nil
    }

    /// Checks the configuration the driver wrote: size and the three rings' alignment and extent.
    public func validate(memory: some GuestMemory) throws(QueueError) {
        guard size > 0, size <= maxSize, size <= SplitQueueLayout.maxQueueSize, size & (size - 1) == 0 else {
            throw .invalidSize(size: size, max: maxSize)
        }
        let rings: [(String, GuestAddress, UInt64, UInt64)] = [
            ("descriptor table", descriptorTable, 16, SplitQueueLayout.descriptorTableSize(size)),
            ("available ring", availableRing, 2, SplitQueueLayout.availableRingSize(size)),
            ("used ring", usedRing, 4, SplitQueueLayout.usedRingSize(size)),
        ]
        for (name, address, alignment, length) in rings {
            guard address.rawValue % alignment == 0, (try? memory.checkRange(address, count: length)) != nil else {
                throw .invalidRingAddress(ring: name, address: address)
            }
        }
    }

    /// The next available chain, validated, or nil when the driver has offered nothing new.
    /// A malformed chain or ring breaks the queue and throws.
    public mutating func popAvailable(memory: some GuestMemory) throws(QueueError) -> DescriptorChain? {
        try checkUsable()
        do throws(QueueError) {
            let available = try load(UInt16.self, availableRing, 2, memory)
            let pending = available &- nextAvailable
            if pending == 0 { return nil }
            guard pending <= size else {
                throw .availableIndexJump(available: available, next: nextAvailable, size: size)
            }
            // Read ring entries only after seeing the index that published them.
            atomicMemoryFence(ordering: .acquiring)
            let slot = UInt64(nextAvailable % size)
            let head = try load(UInt16.self, availableRing, 4 + 2 * slot, memory)
            let chain = try DescriptorChainParser.parse(
                head: head, table: descriptorTable, queueSize: size, indirectAllowed: indirectEnabled, memory: memory)
            nextAvailable &+= 1
            return chain
        } catch {
            brokenReason = error
            throw error
        }
    }

    /// Gives back the chain just popped (the device could not use it yet).
    public mutating func undoPop() {
        nextAvailable &-= 1
    }

    /// Whether the driver has offered chains the device has not popped yet.
    public func hasAvailable(memory: some GuestMemory) -> Bool {
        guard isReady, !isBroken, let available = try? load(UInt16.self, availableRing, 2, memory) else { return false }
        return available != nextAvailable
    }

    /// Returns chain `head` to the driver with `length` bytes written into its writable buffers.
    public mutating func addUsed(head: UInt16, length: UInt32, memory: some GuestMemory) throws(QueueError) {
        try checkUsable()
        guard head < size else { throw .usedHeadOutOfRange(head: head, size: size) }
        let element = 4 + 8 * UInt64(nextUsed % size)
        try store(UInt32(head), usedRing, element, memory)
        try store(length, usedRing, element + 4, memory)
        nextUsed &+= 1
        // The element must be visible before the index that publishes it.
        atomicMemoryFence(ordering: .releasing)
        try store(nextUsed, usedRing, 2, memory)
    }

    /// Whether the driver wants an interrupt for the used entries added since the last decision:
    /// VIRTQ_AVAIL_F_NO_INTERRUPT without EVENT_IDX, used_event with it.
    public mutating func needsNotification(memory: some GuestMemory) -> Bool {
        guard isReady, !isBroken else { return false }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if eventIndexEnabled {
            guard let usedEvent = try? load(UInt16.self, availableRing, 4 + 2 * UInt64(size), memory) else {
                return true
            }
            let old = signalledUsed
            signalledUsed = nextUsed
            guard let old else { return true }
            // vring_need_event: the driver's event index lies in (old, new].
            return nextUsed &- usedEvent &- 1 < nextUsed &- old
        }
        guard let flags = try? load(UInt16.self, availableRing, 0, memory) else { return true }
        return flags & RingFlag.availableNoInterrupt == 0
    }

    /// Asks the driver to kick (true) or not (false) when it adds buffers: used.flags without
    /// EVENT_IDX, avail_event with it. Returns whether buffers are already waiting, so a caller
    /// that re-enables notifications re-checks the ring and does not miss a kick.
    @discardableResult
    public func setNotifications(enabled: Bool, memory: some GuestMemory) throws(QueueError) -> Bool {
        try checkUsable()
        if eventIndexEnabled {
            if enabled { try store(nextAvailable, usedRing, 4 + 8 * UInt64(size), memory) }
        } else {
            try store(enabled ? 0 : RingFlag.usedNoNotify, usedRing, 0, memory)
        }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        return hasAvailable(memory: memory)
    }

    private func checkUsable() throws(QueueError) {
        if let brokenReason { throw .broken(reason: brokenReason.description) }
        guard isReady else { throw .notReady }
    }

    private func load<T: FixedWidthInteger>(
        _: T.Type, _ base: GuestAddress, _ offset: UInt64, _ memory: some GuestMemory
    ) throws(QueueError) -> T {
        guard let address = base.checkedAdding(offset) else { throw .memory(.overflow(address: base, length: offset)) }
        do {
            return try memory.load(T.self, at: address)
        } catch let error as GuestMemoryError {
            throw .memory(error)
        } catch {
            throw .memory(.outOfBounds(address: base, length: offset))
        }
    }

    private func store<T: FixedWidthInteger>(
        _ value: T, _ base: GuestAddress, _ offset: UInt64, _ memory: some GuestMemory
    ) throws(QueueError) {
        guard let address = base.checkedAdding(offset) else { throw .memory(.overflow(address: base, length: offset)) }
        do {
            try memory.store(value, at: address)
        } catch let error as GuestMemoryError {
            throw .memory(error)
        } catch {
            throw .memory(.outOfBounds(address: base, length: offset))
        }
    }
}
