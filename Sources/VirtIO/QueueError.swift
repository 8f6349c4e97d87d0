import GuestMemory

/// Why a virtqueue operation failed. Every case caused by the guest marks the queue broken:
/// the device stops using it until the driver resets the device.
public enum QueueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The queue was used before the driver made it ready, or after it broke.
    case notReady
    /// An earlier error broke the queue; it stays broken until reset.
    case broken(reason: String)
    /// Queue size is zero, not a power of two, or above the device maximum.
    case invalidSize(size: UInt16, max: UInt16)
    /// A ring address is misaligned or its ring does not fit in guest RAM.
    case invalidRingAddress(ring: String, address: GuestAddress)
    /// The available index moved by more than the queue size since the device last looked.
    case availableIndexJump(available: UInt16, next: UInt16, size: UInt16)
    /// A descriptor index (head or next) is not below the table size.
    case descriptorIndexOutOfRange(index: UInt16, tableSize: UInt32)
    /// The chain visits more descriptors than its table holds: a loop.
    case chainLoop(head: UInt16)
    /// The buffers of one chain add up to more than 4 GiB.
    case chainTooLong(head: UInt16)
    /// A buffer (or indirect table) is not wholly inside guest RAM, or its end overflows.
    case bufferOutsideMemory(address: GuestAddress, length: UInt64)
    /// An indirect table's length is zero or not a multiple of 16.
    case invalidIndirectLength(length: UInt32)
    /// An indirect table with more entries than the queue size.
    case indirectTableTooLarge(length: UInt32, queueSize: UInt16)
    /// A chain (direct and indirect descriptors together) with more buffers than the queue size.
    case chainLongerThanQueue(head: UInt16, queueSize: UInt16)
    /// An indirect descriptor inside an indirect table.
    case nestedIndirect
    /// An indirect descriptor that also has VIRTQ_DESC_F_NEXT.
    case indirectWithNext
    /// An indirect descriptor although VIRTIO_RING_F_INDIRECT_DESC was not negotiated.
    case indirectNotNegotiated
    /// A device-readable buffer after a device-writable one.
    case readableAfterWritable(head: UInt16)
    /// The device tried to return a head index that is not in the queue.
    case usedHeadOutOfRange(head: UInt16, size: UInt16)
    /// A ring access failed in guest memory (only possible if RAM changed under the queue).
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case .notReady: "virtqueue is not ready"
        case .broken(let reason): "virtqueue is broken (\(reason)); device needs reset"
        case .invalidSize(let s, let m): "virtqueue size \(s) invalid (power of two, 1...\(m))"
        case .invalidRingAddress(let r, let a): "virtqueue \(r) at \(a) misaligned or outside guest RAM"
        case .availableIndexJump(let a, let n, let s):
            "available index \(a) is more than queue size \(s) ahead of \(n)"
        case .descriptorIndexOutOfRange(let i, let t): "descriptor index \(i) out of table of \(t)"
        case .chainLoop(let h): "descriptor chain from head \(h) loops"
        case .chainTooLong(let h): "descriptor chain from head \(h) exceeds 4 GiB"
        case .bufferOutsideMemory(let a, let n): "descriptor buffer \(a)+\(n) outside guest RAM"
        case .invalidIndirectLength(let n): "indirect table length \(n) is zero or not a multiple of 16"
        case .indirectTableTooLarge(let n, let q): "indirect table of \(n) bytes holds more than queue size \(q) descriptors"
        case .chainLongerThanQueue(let h, let q): "descriptor chain from head \(h) is longer than queue size \(q)"
        case .nestedIndirect: "indirect descriptor inside an indirect table"
        case .indirectWithNext: "indirect descriptor with NEXT flag"
        case .indirectNotNegotiated: "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC"
        case .readableAfterWritable(let h): "chain from head \(h) has a readable buffer after a writable one"
        case .usedHeadOutOfRange(let h, let s): "used head \(h) not in queue of size \(s)"
        case .memory(let e): "virtqueue ring access: \(e)"
        }
    }
}
