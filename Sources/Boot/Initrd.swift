/// Where the initrd goes: page-aligned, as high as possible in the RAM region below the 32-bit
/// hole, under the kernel's initrd_addr_max, and above the kernel.
public enum InitrdPlacement {
    public static func address(
        size: UInt64, ramRegions: [(start: UInt64, size: UInt64)], kernelEnd: UInt64, addressMax: UInt64
    ) throws(BootError) -> UInt64 {
        let lowest = (kernelEnd + Layout.pageSize - 1) & ~(Layout.pageSize - 1)
        guard let low = ramRegions.first(where: { $0.start == 0 }) else {
            throw .initrdDoesNotFit(size: size, lowest: lowest, highest: 0)
        }
        // The last byte must be <= addressMax, so the end (exclusive) is at most addressMax + 1.
        let top = min(low.start + low.size, addressMax &+ 1 == 0 ? UInt64.max : addressMax + 1)
        guard size > 0, size <= top, top - size >= lowest else {
            throw .initrdDoesNotFit(size: size, lowest: lowest, highest: top)
        }
        return (top - size) & ~(Layout.pageSize - 1)
    }
}
