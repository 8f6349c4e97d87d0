import GuestMemory

/// One raw split-queue descriptor as the guest wrote it. Nothing in it is trusted.
public struct Descriptor: Equatable, Sendable {
    public var address: UInt64
    public var length: UInt32
    public var flags: UInt16
    public var next: UInt16

    public init(address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        self.address = address
        self.length = length
        self.flags = flags
        self.next = next
    }

    /// Reads descriptor `index` of the table at `table`. The caller has bounded `index`.
    static func load(table: GuestAddress, index: UInt32, from memory: some GuestMemory) throws(QueueError) -> Descriptor {
        let offset = UInt64(index) * SplitQueueLayout.descriptorSize
        guard let at = table.checkedAdding(offset) else {
            throw .bufferOutsideMemory(address: table, length: offset)
        }
        do {
            let bytes = try memory.read(count: 16, at: at)
            func field<T: FixedWidthInteger>(_: T.Type, _ start: Int) -> T {
                var value: T = 0
                for i in 0..<MemoryLayout<T>.size { value |= T(bytes[start + i]) << (8 * i) }
                return value
            }
            return Descriptor(
                address: field(UInt64.self, 0), length: field(UInt32.self, 8),
                flags: field(UInt16.self, 12), next: field(UInt16.self, 14))
        } catch {
            throw .bufferOutsideMemory(address: at, length: 16)
        }
    }
}

/// A buffer of a validated chain: wholly inside guest RAM, end does not overflow.
public struct GuestBuffer: Equatable, Sendable {
    public var address: GuestAddress
    public var length: UInt32
}

/// A validated descriptor chain: device-readable buffers first, then device-writable ones.
///
/// Produced only by `Queue.popAvailable`, which has checked every index, address and length;
/// the helpers below still go through the bounds-checked `GuestMemory` API.
public struct DescriptorChain: Equatable, Sendable {
    /// The head index, returned to the driver in the used ring.
    public var head: UInt16
    public var readable: [GuestBuffer]
    public var writable: [GuestBuffer]

    public var readableLength: UInt64 { readable.reduce(0) { $0 + UInt64($1.length) } }
    public var writableLength: UInt64 { writable.reduce(0) { $0 + UInt64($1.length) } }

    /// Gathers up to `count` readable bytes starting `offset` bytes into the readable buffers.
    public func read(from memory: some GuestMemory, offset: UInt64 = 0, count: Int) throws -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        try walk(readable, offset: offset, count: UInt64(count)) { address, n in
            result += try memory.read(count: n, at: address)
        }
        return result
    }

    /// The pieces of [offset, offset+count) across the writable buffers, in order: where a device
    /// that fills guest memory itself (a disk reading straight into it) puts its bytes.
    public func writablePieces(offset: UInt64, count: UInt64) -> [(address: GuestAddress, length: Int)] {
        var pieces: [(address: GuestAddress, length: Int)] = []
        // walk's body never throws here.
        try? walk(writable, offset: offset, count: count) { address, n in pieces.append((address, n)) }
        return pieces
    }

    /// Scatters `bytes` into the writable buffers from `offset`; returns how many fitted.
    @discardableResult
    public func write(_ bytes: [UInt8], to memory: some GuestMemory, offset: UInt64 = 0) throws -> Int {
        var done = 0
        try walk(writable, offset: offset, count: UInt64(bytes.count)) { address, n in
            try memory.write(bytes[done..<(done + n)], at: address)
            done += n
        }
        return done
    }

    /// Calls `body(address, count)` for the pieces of [offset, offset+count) across `buffers`.
    private func walk(
        _ buffers: [GuestBuffer], offset: UInt64, count: UInt64, _ body: (GuestAddress, Int) throws -> Void
    ) throws {
        var skip = offset
        var left = count
        for buffer in buffers where left > 0 {
            let length = UInt64(buffer.length)
            if skip >= length {
                skip -= length
                continue
            }
            let n = min(length - skip, left)
            // Validated at parse time: address + length is inside RAM, so address + skip is too.
            try body(buffer.address.adding(skip), Int(n))
            skip = 0
            left -= n
        }
    }
}
