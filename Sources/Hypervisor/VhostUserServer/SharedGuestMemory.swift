import CShims
import GuestMemory
import SystemSupport
import VhostUser
import VirtIO
#if canImport(Glibc)
import Glibc
#endif

/// Guest RAM shared with a vhost-user frontend: the frontend's memfd regions mapped MAP_SHARED
/// into this process, addressed by guest-physical address.
final class SharedGuestMemory: GuestMemory, @unchecked Sendable {
    // SAFETY: each mapping is made in init and unmapped in deinit, never moved or resized;
    // `bases[i]` points at `regions[i].size` bytes of `maps[i]` (offset by the region's mmap
    // offset). Content races with the guest as real RAM does; bounds are checked on every access.
    private let maps: [(pointer: UnsafeMutableRawPointer, length: Int)]
    private let bases: [UnsafeMutableRawPointer]
    let regions: [GuestRegion]

    /// Maps each region from its fd (same order). Regions must not overlap in guest space.
    init(_ table: [VhostUserMemoryRegion], fds: [Int32]) throws(HypervisorError) {
        guard table.count == fds.count, !table.isEmpty else {
            throw .vhostUser("memory table: \(table.count) regions, \(fds.count) fds")
        }
        let sorted = table.indices.sorted { table[$0].guestAddress < table[$1].guestAddress }
        var maps: [(UnsafeMutableRawPointer, Int)] = []
        var bases: [UnsafeMutableRawPointer] = []
        var regions: [GuestRegion] = []
        func unmapAll() { for (p, n) in maps { munmap(p, n) } }
        for i in sorted {
            let region = table[i]
            let (length, overflow) = region.size.addingReportingOverflow(region.mmapOffset)
            guard region.size > 0, !overflow, length <= UInt64(Int.max),
                GuestAddress(region.guestAddress).checkedAdding(region.size) != nil,
                regions.last.map({ ($0.end?.rawValue ?? .max) <= region.guestAddress }) ?? true
            else {
                unmapAll()
                throw .vhostUser("memory table: bad region \(region)")
            }
            var pointer: UnsafeMutableRawPointer?
            let rc = ks_hv_mmap_shared(fds[i], length, 0, &pointer)
            guard rc == 0, let pointer else {
                unmapAll()
                throw .vhostUser("mmap of region at 0x\(String(region.guestAddress, radix: 16)): \(Errno(rawValue: -rc))")
            }
            maps.append((pointer, Int(length)))
            bases.append(pointer + Int(region.mmapOffset))
            regions.append(GuestRegion(start: GuestAddress(region.guestAddress), size: region.size))
        }
        self.maps = maps.map { (pointer: $0.0, length: $0.1) }
        self.bases = bases
        self.regions = regions
    }

    deinit {
        for map in maps { munmap(map.pointer, map.length) }
    }

    func withUnsafeMutableBytes<R>(
        at address: GuestAddress, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) throws -> R {
        guard count >= 0 else { throw GuestMemoryError.outOfBounds(address: address, length: 0) }
        try checkRange(address, count: UInt64(count))
        for (index, region) in regions.enumerated() {
            if let offset = region.offset(of: address, count: UInt64(count)) {
                return try body(UnsafeMutableRawBufferPointer(start: bases[index] + Int(offset), count: count))
            }
        }
        throw GuestMemoryError.outOfBounds(address: address, length: UInt64(count))
    }
}

/// An interrupt line that writes 1 to a frontend's call (or err) eventfd. The fd belongs to the
/// vhost-user session, which closes it when replaced; the session and this line live on the
/// server thread, so the fd is never used after it is closed.
struct EventFDLine: InterruptLine {
    let fd: Int32

    func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }
}

/// The real platform of a vhost-user session: mmap of memfds, eventfd interrupt lines, close(2).
final class SocketPlatform: VhostUserPlatform {
    /// The memory of the last SET_MEM_TABLE (the server re-arms queue notifications in it).
    private(set) var memory: SharedGuestMemory?

    func mapMemory(_ regions: [VhostUserMemoryRegion], fds: [Int32]) throws -> any GuestMemory {
        let mapped = try SharedGuestMemory(regions, fds: fds)
        memory = mapped
        return mapped
    }

    func interruptLine(fd: Int32) -> any InterruptLine { EventFDLine(fd: fd) }

    func close(fd: Int32) { _ = Glibc.close(fd) }
}
