import GuestMemory

/// How to enter a loaded kernel.
public enum KernelEntry: Equatable, Sendable {
    /// PVH: 32-bit protected mode, paging off, %ebx = hvm_start_info (XEN_ELFNOTE_PHYS32_ENTRY).
    case pvh(UInt64)
    /// Linux 64-bit boot protocol: long mode, identity paging, %rsi = zero page.
    case linux64(UInt64)
}

/// A kernel placed in guest memory.
public struct LoadedKernel: Equatable, Sendable {
    public var entry: KernelEntry
    /// Lowest and one-past-highest guest address the kernel occupies (or needs, for bzImage's init_size).
    public var start: UInt64
    public var end: UInt64
    /// For a bzImage: the setup header bytes (file offsets 0x1f1 up to its end), copied into the zero page.
    public var setupHeader: [UInt8]?
    /// The highest address the kernel accepts for the initrd's last byte (initrd_addr_max).
    public var initrdAddressMax: UInt64
}

/// Little-endian field access on a byte array, bounds-checked.
extension Array where Element == UInt8 {
    func le<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T? {
        guard offset >= 0, offset <= count - MemoryLayout<T>.size else { return nil }
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(self[offset + i]) << (8 * i) }
        return value
    }
}

public enum KernelLoader {
    /// Loads a vmlinux ELF (PVH note preferred) or a bzImage, recognised by its contents.
    public static func load(_ image: [UInt8], into memory: some GuestMemory) throws(BootError) -> LoadedKernel {
        if image.count >= 4 && image[0..<4] == [0x7f, 0x45, 0x4c, 0x46] {
            return try ElfLoader.load(image, into: memory)
        }
        if image.le(UInt32.self, at: 0x202) == BzImageLoader.headerMagic {
            return try BzImageLoader.load(image, into: memory)
        }
        throw .notAKernel("neither an ELF file nor a bzImage (no 'HdrS' at 0x202), \(image.count) bytes")
    }
}
