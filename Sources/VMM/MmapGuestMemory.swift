import GuestMemory
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Guest RAM backed by anonymous private mmaps, one per region: what KVM maps into the VM.
public final class MmapGuestMemory: GuestMemory, @unchecked Sendable {
    // SAFETY: each mapping is created in init and unmapped in deinit, never moved or resized;
    // `regions[i]` is backed by `mappings[i]` of exactly `regions[i].size` bytes. Concurrent
    // access from vCPUs and devices races in content only, as real RAM does.
    private let mappings: [UnsafeMutableRawPointer]
    public let regions: [GuestRegion]

    /// Maps one zeroed anonymous region per entry of `regions` (sorted, non-overlapping, page-sized).
    public init(regions: [GuestRegion]) throws(Errno) {
        var maps: [UnsafeMutableRawPointer] = []
        for region in regions {
            let p = mmap(nil, Int(region.size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            guard let p, p != MAP_FAILED else {
                let error = Errno.current
                for (m, r) in zip(maps, regions) { munmap(m, Int(r.size)) }
                throw error
            }
            maps.append(p)
        }
        self.mappings = maps
        self.regions = regions
    }

    deinit {
        for (m, r) in zip(mappings, regions) { munmap(m, Int(r.size)) }
    }

    /// Host address of region `index`, for KVM_SET_USER_MEMORY_REGION only.
    public func hostAddress(ofRegion index: Int) -> UnsafeMutableRawPointer { mappings[index] }

    public func withUnsafeMutableBytes<R>(
        at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        guard count >= 0 else { throw GuestMemoryError.outOfBounds(address: address, length: 0) }
        try checkRange(address, count: UInt64(count))
        for (index, region) in regions.enumerated() {
            if let offset = region.offset(of: address, count: UInt64(count)) {
                return try body(UnsafeMutableRawBufferPointer(start: mappings[index] + Int(offset), count: count))
            }
        }
        throw GuestMemoryError.outOfBounds(address: address, length: UInt64(count))
    }
}
