import CShims
import Glibc
import GuestMemory

/// Guest memory shared by a vhost-user frontend: each region's fd mapped MAP_SHARED, so our
/// device writes land in the guest's RAM. Unmapped on deinit.
public final class MappedGuestMemory: GuestMemory, @unchecked Sendable {
    // SAFETY: the mappings are created in init, never moved, and unmapped in deinit; access is
    // racy in content only, as guest RAM is.
    private let bases: [UnsafeMutableRawPointer]
    public let regions: [GuestRegion]

    /// Maps `regions` from `fds` (same order). Does not take ownership of the fds.
    public init(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws(VhostUserError) {
        guard regions.count == fds.count else {
            throw .badFDCount(request: .setMemTable, expected: regions.count, received: fds.count)
        }
        let sorted = zip(regions, fds).sorted { $0.0.guestAddress < $1.0.guestAddress }
        var bases: [UnsafeMutableRawPointer] = []
        var previousEnd: UInt64 = 0
        for (index, (region, fd)) in sorted.enumerated() {
            guard index == 0 || region.guestAddress >= previousEnd, let size = Int(exactly: region.size),
                let offset = off_t(exactly: region.mmapOffset)
            else {
                for (mapped, region) in zip(bases, sorted) { munmap(mapped, Int(region.0.size)) }
                throw .badMemoryTable("region \(index) overlaps or is too large")
            }
            let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset)
            guard let base, base != MAP_FAILED else {
                for (mapped, region) in zip(bases, sorted) { munmap(mapped, Int(region.0.size)) }
                throw .mapFailed("mmap of region \(index) (\(size) bytes at offset \(offset)): errno \(errno)")
            }
            bases.append(base)
            previousEnd = region.guestAddress + region.size
        }
        self.bases = bases
        self.regions = sorted.map { GuestRegion(start: GuestAddress($0.0.guestAddress), size: $0.0.size) }
    }

    deinit {
        for (base, region) in zip(bases, regions) { munmap(base, Int(region.size)) }
    }

    public func withUnsafeMutableBytes<R>(
        at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        guard count >= 0 else { throw GuestMemoryError.outOfBounds(address: address, length: 0) }
        try checkRange(address, count: UInt64(count))
        for (index, region) in regions.enumerated() {
            if let offset = region.offset(of: address, count: UInt64(count)) {
                // SAFETY: [offset, offset+count) lies inside this region's mapping (checked above).
                return try body(UnsafeMutableRawBufferPointer(start: bases[index] + Int(offset), count: count))
            }
        }
        throw GuestMemoryError.outOfBounds(address: address, length: UInt64(count))
    }
}
