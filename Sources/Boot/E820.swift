/// One entry of the BIOS e820 memory map (also PVH's hvm_memmap_table_entry).
public struct E820Entry: Equatable, Sendable {
    public static let ram: UInt32 = 1
    public static let reserved: UInt32 = 2

    public var address: UInt64
    public var size: UInt64
    public var type: UInt32

    public init(address: UInt64, size: UInt64, type: UInt32) {
        self.address = address
        self.size = size
        self.type = type
    }
}

public enum E820 {
    /// The map for guest RAM regions: low RAM below the MP table, the reserved BIOS area up to
    /// 1 MiB, then RAM from 1 MiB to the end of each region.
    public static func map(ramRegions: [(start: UInt64, size: UInt64)]) -> [E820Entry] {
        var entries: [E820Entry] = []
        for region in ramRegions {
            let end = region.start + region.size
            if region.start == 0 {
                entries.append(E820Entry(address: 0, size: min(end, Layout.ebdaStart), type: E820Entry.ram))
                if end > Layout.ebdaStart {
                    entries.append(E820Entry(
                        address: Layout.ebdaStart, size: min(end, Layout.highMemoryStart) - Layout.ebdaStart,
                        type: E820Entry.reserved))
                }
                if end > Layout.highMemoryStart {
                    entries.append(E820Entry(
                        address: Layout.highMemoryStart, size: end - Layout.highMemoryStart, type: E820Entry.ram))
                }
            } else {
                entries.append(E820Entry(address: region.start, size: region.size, type: E820Entry.ram))
            }
        }
        return entries
    }
}
