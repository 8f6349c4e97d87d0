import GuestMemory

/// Writes the Linux zero page (struct boot_params) for the 64-bit boot protocol.
public enum BootParams {
    // Offsets inside struct boot_params (Documentation/arch/x86/zero-page.rst, boot.rst).
    static let extRamdiskImage = 0x0c0, extRamdiskSize = 0x0c4, extCmdLinePtr = 0x0c8
    static let e820Entries = 0x1e8
    static let setupHeader = 0x1f1
    static let bootFlag = 0x1fe, headerMagic = 0x202
    static let typeOfLoader = 0x210, loadFlags = 0x211
    static let ramdiskImage = 0x218, ramdiskSize = 0x21c
    static let cmdLinePtr = 0x228
    static let kernelAlignment = 0x230
    static let cmdlineSize = 0x238
    static let e820Table = 0x2d0
    static let e820MaxEntries = 128

    /// Builds the 4 KiB zero page.
    public static func build(
        setupHeader: [UInt8]?, cmdlineAddress: UInt64, cmdlineSize: Int,
        initrd: (address: UInt64, size: UInt64)?, e820: [E820Entry]
    ) throws(BootError) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 4096)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
            for i in 0..<MemoryLayout<T>.size { page[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        if let setupHeader {
            for (i, byte) in setupHeader.prefix(0x280 - Self.setupHeader).enumerated() { page[Self.setupHeader + i] = byte }
        } else {
            put(UInt16(0xaa55), bootFlag)
            put(UInt32(0x5372_6448), headerMagic)
            put(UInt32(0x0100_0000), kernelAlignment)
        }
        page[typeOfLoader] = 0xff
        page[loadFlags] |= 0x01  // LOADED_HIGH
        put(UInt32(truncatingIfNeeded: cmdlineAddress), cmdLinePtr)
        put(UInt32(truncatingIfNeeded: cmdlineAddress >> 32), extCmdLinePtr)
        put(UInt32(cmdlineSize), cmdlineSize)
        if let initrd {
            put(UInt32(truncatingIfNeeded: initrd.address), ramdiskImage)
            put(UInt32(truncatingIfNeeded: initrd.size), ramdiskSize)
            put(UInt32(truncatingIfNeeded: initrd.address >> 32), extRamdiskImage)
            put(UInt32(truncatingIfNeeded: initrd.size >> 32), extRamdiskSize)
        }
        guard e820.count <= e820MaxEntries else { throw .elf("too many e820 entries") }
        page[e820Entries] = UInt8(e820.count)
        for (i, e) in e820.enumerated() {
            let base = e820Table + i * 20
            put(e.address, base)
            put(e.size, base + 8)
            put(e.type, base + 16)
        }
        return page
    }
}

/// Writes PVH's hvm_start_info (version 1), its module list (the initrd) and its memory map.
public enum PVHStartInfo {
    public static let magic: UInt32 = 0x336e_c578

    public static func write(
        into memory: some GuestMemory, cmdlineAddress: UInt64, initrd: (address: UInt64, size: UInt64)?,
        e820: [E820Entry]
    ) throws(BootError) {
        var info = [UInt8](repeating: 0, count: 56)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int, in bytes: inout [UInt8]) {
            for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        put(magic, 0, in: &info)
        put(UInt32(1), 4, in: &info)  // version
        put(UInt32(initrd == nil ? 0 : 1), 12, in: &info)  // nr_modules
        put(initrd == nil ? UInt64(0) : Layout.pvhModlistStart, 16, in: &info)
        put(cmdlineAddress, 24, in: &info)
        put(Layout.pvhMemmapStart, 40, in: &info)
        put(UInt32(e820.count), 48, in: &info)
        try mem { try memory.write(info, at: GuestAddress(Layout.pvhInfoStart)) }
        if let initrd {
            var module = [UInt8](repeating: 0, count: 32)
            put(initrd.address, 0, in: &module)
            put(initrd.size, 8, in: &module)
            try mem { try memory.write(module, at: GuestAddress(Layout.pvhModlistStart)) }
        }
        var map = [UInt8](repeating: 0, count: 24 * e820.count)
        for (i, e) in e820.enumerated() {
            put(e.address, i * 24, in: &map)
            put(e.size, i * 24 + 8, in: &map)
            put(e.type, i * 24 + 16, in: &map)
        }
        try mem { try memory.write(map, at: GuestAddress(Layout.pvhMemmapStart)) }
    }
}
