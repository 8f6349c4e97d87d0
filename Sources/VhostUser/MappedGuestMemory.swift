import CHost
import Glibc
import GuestMemory
import SystemSupport

/// Guest RAM shared by a vhost-user frontend: each region's fd (a memfd) mapped MAP_SHARED into
/// this process, addressed by guest-physical address, so device writes land in the guest's RAM.
/// Unmapped on deinit.
public final class MappedGuestMemory: GuestMemory, @unchecked Sendable {
    // SAFETY: each mapping is made in init and unmapped in deinit, never moved or resized;
    // `bases[i]` points at `regions[i].size` bytes inside `maps[i]` (past the region's mmap
    // offset). Content races with the guest as real RAM does; bounds are checked on every access.
    private let maps: [(pointer: UnsafeMutableRawPointer, length: Int)]
    private let bases: [UnsafeMutableRawPointer]
    public let regions: [GuestRegion]

    /// Maps each region from its fd (same order). Regions must be non-empty, must not overlap in
    /// guest space, and must lie within their fd's size (fstat), so no access can fault. Does not take ownership of the fds (the mappings outlive them).
    public init(_ table: [VhostUserMemoryRegion], fds: [Int32]) throws(VhostUserError) {
        guard table.count == fds.count, !table.isEmpty else {
            throw .badFDCount(request: .setMemTable, expected: table.count, received: fds.count)
        }
        let sorted = table.indices.sorted { table[$0].guestAddress < table[$1].guestAddress }
        var maps: [(pointer: UnsafeMutableRawPointer, length: Int)] = []
        var bases: [UnsafeMutableRawPointer] = []
        var regions: [GuestRegion] = []
        func unmapAll() { for map in maps { munmap(map.pointer, map.length) } }
        for i in sorted {
            let region = table[i]
            // mmap offsets must be page aligned; the region's may not be: map from 0 through its end.
            let (length, overflow) = region.size.addingReportingOverflow(region.mmapOffset)
            guard region.size > 0, !overflow, length <= UInt64(Int.max),
                GuestAddress(region.guestAddress).checkedAdding(region.size) != nil,
                regions.last.map({ ($0.end?.rawValue ?? .max) <= region.guestAddress }) ?? true
            else {
                unmapAll()
                throw .badMemoryTable("region at 0x\(String(region.guestAddress, radix: 16)) of \(region.size) bytes is empty, overlaps or overflows")
            }
            // A mapping past the end of its file raises SIGBUS on access: refuse it up front.
            var st = stat()
            guard fstat(fds[i], &st) == 0, st.st_size >= 0, length <= UInt64(st.st_size) else {
                let held = fstat(fds[i], &st) == 0 ? "\(st.st_size) bytes" : "no size (\(Errno.current))"
                unmapAll()
                throw .badMemoryTable("region at 0x\(String(region.guestAddress, radix: 16)) needs \(length) bytes of its fd, which holds \(held)")
            }
            var pointer: UnsafeMutableRawPointer?
            let rc = ks_hv_mmap_shared(fds[i], length, 0, &pointer)
            guard rc == 0, let pointer else {
                unmapAll()
                throw .mapFailed("mmap of region at 0x\(String(region.guestAddress, radix: 16)) (\(length) bytes): \(Errno(rawValue: -rc))")
            }
            maps.append((pointer, Int(length)))
            bases.append(pointer + Int(region.mmapOffset))
            regions.append(GuestRegion(start: GuestAddress(region.guestAddress), size: region.size))
        }
        self.maps = maps
        self.bases = bases
        self.regions = regions
    }

    deinit {
        for map in maps { munmap(map.pointer, map.length) }
    }

    public func hostAddress(ofRegion index: Int) -> UnsafeMutableRawPointer { bases[index] }
}
