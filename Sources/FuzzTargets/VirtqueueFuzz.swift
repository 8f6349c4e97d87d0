// The split virtqueue as a hostile guest writes it: the whole of a small guest memory (rings,
// descriptor tables, indirect tables, buffers) comes from the input, and the device side pops,
// reads, writes and returns chains as a device would.
//
// Input: u8 log2 of the queue size (mod 16), u8 flags (bit 0 indirect, bit 1 EVENT_IDX),
// u16 descriptor table, u16 available ring, u16 used ring (offsets into memory), then the
// memory image (zero-padded to 16 KiB).
import GuestMemory
import VirtIO
import VirtIOTestSupport

enum VirtqueueFuzz {
    static let memorySize: UInt64 = 0x4000

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let size = UInt16(1) << (input.u8() % 16)
        let flags = input.u8()
        let table = UInt64(input.u16()), available = UInt64(input.u16()), used = UInt64(input.u16())
        let memory = HeapGuestMemory(size: memorySize)
        let image = input.take(Int(memorySize))
        do {
            try memory.write(image, at: GuestAddress(0))
        } catch {
            preconditionFailure("virtqueue fuzz: cannot write the memory image: \(error)")
        }

        var queue = Queue(maxSize: 256)
        queue.size = size
        queue.descriptorTable = GuestAddress(table)
        queue.availableRing = GuestAddress(available)
        queue.usedRing = GuestAddress(used)
        queue.indirectEnabled = flags & 1 != 0
        queue.eventIndexEnabled = flags & 2 != 0
        guard (try? queue.validate(memory: memory)) != nil else { return }
        queue.isReady = true
        _ = try? queue.setNotifications(enabled: true, memory: memory)

        // At most two rounds of the ring: a queue must never yield more chains than that.
        for _ in 0..<(2 * Int(size)) {
            let chain: DescriptorChain
            do {
                guard let next = try queue.popAvailable(memory: memory) else { break }
                chain = next
            } catch {
                precondition(queue.isBroken, "virtqueue fuzz: a failed pop left the queue usable")
                precondition((try? queue.popAvailable(memory: memory)) == nil, "virtqueue fuzz: a broken queue popped")
                return
            }
            check(chain, size: size)
            // Echo what the guest offered into what it lets us write, as a device would.
            let readable = min(chain.readableLength, 4096)
            var written = 0
            if let data = try? chain.read(from: memory, count: Int(readable)) {
                written = (try? chain.write(data, to: memory)) ?? 0
            }
            do {
                try queue.addUsed(head: chain.head, length: UInt32(written), memory: memory)
            } catch {
                return
            }
            _ = queue.needsNotification(memory: memory)
        }
    }

    /// What the parser promises about every chain it returns.
    private static func check(_ chain: DescriptorChain, size: UInt16) {
        precondition(chain.head < size, "virtqueue fuzz: head \(chain.head) outside a queue of \(size)")
        precondition(chain.readable.count + chain.writable.count <= Int(size), "virtqueue fuzz: chain longer than the queue")
        for buffer in chain.readable + chain.writable {
            precondition(buffer.address.rawValue + UInt64(buffer.length) <= memorySize, "virtqueue fuzz: buffer outside memory")
        }
    }

    // MARK: seeds

    /// Memory images written by the fake driver (the layout a Linux guest uses), one per shape
    /// of chain: direct, chained, writable, indirect, and several published at once.
    static var seeds: [(name: String, bytes: [UInt8])] {
        typealias Segment = FakeVirtqueueDriver.Segment
        let shapes: [(String, Bool, [[Segment]])] = [
            ("direct", false, [[.readable(Array(0..<64))]]),
            ("chained", false, [[.readable([UInt8](repeating: 1, count: 44)), .readable(Array(0..<100)), .writable(200)]]),
            ("writable-only", false, [[.writable(4096)]]),
            ("indirect", true, [[.readable(Array(0..<40)), .writable(16), .writable(4096)]]),
            ("several", false, [[.readable([8])], [.readable(Array(0..<16)), .writable(16)], [.writable(64)], [.readable([1])]]),
        ]
        return shapes.compactMap { name, indirect, chains in
            guard let bytes = try? image(indirect: indirect, chains: chains) else { return nil }
            return (name, bytes)
        }
    }

    private static func image(indirect: Bool, chains: [[FakeVirtqueueDriver.Segment]]) throws -> [UInt8] {
        let memory = HeapGuestMemory(size: memorySize)
        let driver = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0), dataSize: 0x3000)
        for chain in chains {
            if indirect { try driver.addIndirect(chain) } else { try driver.add(chain) }
        }
        var w = SeedWriter()
        w.u8(4)  // 16 entries
        w.u8(indirect ? 1 : 0)
        w.u16(UInt16(driver.descriptorTable.rawValue))
        w.u16(UInt16(driver.availableRing.rawValue))
        w.u16(UInt16(driver.usedRing.rawValue))
        var image = try memory.read(count: Int(memorySize), at: GuestAddress(0))
        while image.last == 0 { image.removeLast() }
        w.raw(image)
        return w.bytes
    }
}
