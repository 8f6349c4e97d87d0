import GuestMemory
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Guest RAM backed by anonymous private mmaps, one per region: what KVM maps into the VM.
///
/// Each region starts on a 2 MiB boundary of our address space and is advised for transparent
/// huge pages (as QEMU does for guest RAM), so KVM can map the guest with 2 MiB pages: on the
/// nested KVM host, 4 KiB pages cost one nested page fault exit per page the guest first touches
/// (about 8,000 in a boot to init, against 4,000 exits in all for QEMU).
public final class MmapGuestMemory: GuestMemory, @unchecked Sendable {
    static let hugePageSize = 2 << 20

    // SAFETY: each mapping is created in init and unmapped in deinit, never moved or resized;
    // `regions[i]` is backed by `mappings[i]` of exactly `regions[i].size` bytes. Concurrent
    // access from vCPUs and devices races in content only, as real RAM does.
    private let mappings: [UnsafeMutableRawPointer]
    public let regions: [GuestRegion]

    /// Maps one zeroed anonymous region per entry of `regions` (sorted, non-overlapping, page-sized).
    public init(regions: [GuestRegion]) throws(Errno) {
        var maps: [UnsafeMutableRawPointer] = []
        for region in regions {
            guard let p = Self.mapAligned(Int(region.size)) else {
                let error = Errno.current
                for (m, r) in zip(maps, regions) { munmap(m, Int(r.size)) }
                throw error
            }
            maps.append(p)
        }
        self.mappings = maps
        self.regions = regions
    }

    /// Guest RAM from a snapshot: each of its regions mapped private from the file (`mapRegion`),
    /// so the guest reads the saved pages and its writes stay in this VM.
    public init(snapshot: SnapshotFile, fd: FileDescriptor) throws(SnapshotFileError) {
        var maps: [UnsafeMutableRawPointer] = []
        for index in snapshot.regions.indices {
            do {
                maps.append(try snapshot.mapRegion(index, from: fd))
            } catch {
                for (m, r) in zip(maps, snapshot.regions) { munmap(m, Int(r.size)) }
                throw error
            }
        }
        self.mappings = maps
        self.regions = snapshot.regions.map { GuestRegion(start: GuestAddress($0.guestAddress), size: $0.size) }
    }

    /// `size` zeroed bytes at a 2 MiB-aligned address, advised for huge pages; nil with errno set.
    private static func mapAligned(_ size: Int) -> UnsafeMutableRawPointer? {
        let span = size + hugePageSize
        guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
            raw != MAP_FAILED
        else { return nil }
        let head = (hugePageSize - Int(bitPattern: raw) % hugePageSize) % hugePageSize
        if head > 0 { munmap(raw, head) }
        let start = raw + head
        munmap(start + size, span - head - size)  // never zero: span exceeds size by a full huge page
        // Advice only: a kernel without THP keeps 4 KiB pages, which work the same.
        _ = madvise(start, size, MADV_HUGEPAGE)
        return start
    }

    deinit {
        for (m, r) in zip(mappings, regions) { munmap(m, Int(r.size)) }
    }

    /// Host address of region `index`, for KVM_SET_USER_MEMORY_REGION and the region lookup.
    public func hostAddress(ofRegion index: Int) -> UnsafeMutableRawPointer { mappings[index] }

    /// Drops the host pages behind the range (MADV_DONTNEED on our private anonymous mapping):
    /// the host gets the memory back, KVM's MMU notifier unmaps it from the guest, and the
    /// guest's next touch finds zeroed pages. Page-aligned ranges only; a partial page at either
    /// end is zeroed instead.
    public func discard(at address: GuestAddress, count: Int) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        try withUnsafeMutableBytes(at: address, count: count) { range in
            guard let base = range.baseAddress, count > 0 else { return }
            let first = (Int(bitPattern: base) + page - 1) / page * page - Int(bitPattern: base)
            let whole = max(0, (count - first) / page * page)
            guard whole > 0 else {
                range.initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            if madvise(base + first, whole, MADV_DONTNEED) != 0 {
                range.initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            UnsafeMutableRawBufferPointer(rebasing: range[..<first]).initializeMemory(as: UInt8.self, repeating: 0)
            UnsafeMutableRawBufferPointer(rebasing: range[(first + whole)...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}
