/// Guest memory backed by zeroed heap buffers, one per region.
///
/// For tests of loaders and devices (a fake driver writes descriptor chains into it), and for
/// any provider that does not need the memory to be mapped into a VM. `MmapGuestMemory` in the
/// VMM is the one KVM sees.
public final class HeapGuestMemory: GuestMemory, @unchecked Sendable {
    // SAFETY: the buffers are allocated once in init, never reallocated, and freed in deinit;
    // concurrent access from devices and vCPUs is racy in content only, as real RAM is.
    private let buffers: [UnsafeMutableRawBufferPointer]
    public let regions: [GuestRegion]

    /// One region per (start, size), which must be sorted and not overlap.
    public init(regions: [GuestRegion]) throws(GuestMemoryError) {
        var previousEnd: GuestAddress? = nil
        for region in regions {
            guard let end = region.end else { throw .overflow(address: region.start, length: region.size) }
            if let previousEnd, region.start < previousEnd {
                throw .outOfBounds(address: region.start, length: region.size)
            }
            previousEnd = end
        }
        self.regions = regions
        self.buffers = regions.map { region in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(region.size), alignment: 4096)
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            return buffer
        }
    }

    /// A single region of `size` bytes at guest address 0.
    public convenience init(size: UInt64) {
        // A single region starting at 0 cannot overlap or overflow.
        try! self.init(regions: [GuestRegion(start: GuestAddress(0), size: size)])
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }

    public func hostAddress(ofRegion index: Int) -> UnsafeMutableRawPointer {
        // `allocate(byteCount:alignment:)` always returns a base address.
        buffers[index].baseAddress!
    }
}
