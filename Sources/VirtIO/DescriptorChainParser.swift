import GuestMemory

/// Walks one descriptor chain and checks everything the guest controls in it.
///
/// Rules (virtio 1.x, 2.7.5): every index below its table's size; at most one table's worth of
/// descriptors per table (more means a loop); each buffer wholly inside guest RAM without
/// overflow; indirect tables non-empty, a multiple of 16 bytes, no more entries than the queue
/// size, inside RAM, not nested and not combined with NEXT; no more buffers in a chain than the
/// queue size ("A driver MUST NOT create a descriptor chain longer than the Queue Size");
/// readable buffers before writable ones; at most 4 GiB in total. The size limits are checked
/// before anything is read or kept, so one descriptor cannot cost more than a queue's worth.
enum DescriptorChainParser {
    static let maxChainBytes: UInt64 = 1 << 32

    static func parse(
        head: UInt16, table: GuestAddress, queueSize: UInt16, indirectAllowed: Bool, memory: some GuestMemory
    ) throws(QueueError) -> DescriptorChain {
        var chain = DescriptorChain(head: head, readable: [], writable: [])
        var tableAddress = table
        var tableSize = UInt32(queueSize)
        var index = head
        var inIndirect = false
        var visited: UInt32 = 0
        var total: UInt64 = 0

        while true {
            guard UInt32(index) < tableSize else {
                throw .descriptorIndexOutOfRange(index: index, tableSize: tableSize)
            }
            visited += 1
            guard visited <= tableSize else { throw .chainLoop(head: head) }
            let descriptor = try Descriptor.load(table: tableAddress, index: UInt32(index), from: memory)

            if descriptor.flags & DescriptorFlag.indirect != 0 {
                guard !inIndirect else { throw .nestedIndirect }
                guard indirectAllowed else { throw .indirectNotNegotiated }
                guard descriptor.flags & DescriptorFlag.next == 0 else { throw .indirectWithNext }
                let length = descriptor.length
                guard length > 0, UInt64(length) % SplitQueueLayout.descriptorSize == 0 else {
                    throw .invalidIndirectLength(length: length)
                }
                guard UInt64(length) / SplitQueueLayout.descriptorSize <= UInt64(queueSize) else {
                    throw .indirectTableTooLarge(length: length, queueSize: queueSize)
                }
                let address = GuestAddress(descriptor.address)
                try checkBuffer(address, UInt64(length), memory)
                tableAddress = address
                tableSize = length / UInt32(SplitQueueLayout.descriptorSize)
                index = 0
                visited = 0
                inIndirect = true
                continue
            }

            guard chain.readable.count + chain.writable.count < Int(queueSize) else {
                throw .chainLongerThanQueue(head: head, queueSize: queueSize)
            }
            let address = GuestAddress(descriptor.address)
            try checkBuffer(address, UInt64(descriptor.length), memory)
            total += UInt64(descriptor.length)
            guard total <= maxChainBytes else { throw .chainTooLong(head: head) }
            let buffer = GuestBuffer(address: address, length: descriptor.length)
            if descriptor.flags & DescriptorFlag.write != 0 {
                chain.writable.append(buffer)
            } else {
                guard chain.writable.isEmpty else { throw .readableAfterWritable(head: head) }
                chain.readable.append(buffer)
            }

            guard descriptor.flags & DescriptorFlag.next != 0 else { return chain }
            index = descriptor.next
        }
    }

    private static func checkBuffer(_ address: GuestAddress, _ length: UInt64, _ memory: some GuestMemory) throws(QueueError) {
        do {
            try memory.checkRange(address, count: length)
        } catch {
            throw .bufferOutsideMemory(address: address, length: length)
        }
    }
}
