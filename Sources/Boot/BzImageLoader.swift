import GuestMemory

/// Loads a bzImage for the 64-bit boot protocol (version >= 2.12 with XLF_KERNEL_64): the
/// protected-mode part goes to 1 MiB and is entered at load address + 0x200 (startup_64).
public enum BzImageLoader {
    static let headerMagic: UInt32 = 0x5372_6448  // "HdrS"
    static let setupHeaderStart = 0x1f1
    static let minimumVersion: UInt16 = 0x020c
    static let xlfKernel64: UInt16 = 0x1
    static let loadedHigh: UInt8 = 0x1

    public static func load(_ image: [UInt8], into memory: some GuestMemory) throws(BootError) -> LoadedKernel {
        guard image.count >= 0x270 else { throw .bzImage("file of \(image.count) bytes is too short for a setup header") }
        guard image.le(UInt16.self, at: 0x1fe) == 0xaa55 else { throw .bzImage("no boot flag 0xaa55 at 0x1fe") }
        guard image.le(UInt32.self, at: 0x202) == headerMagic else { throw .bzImage("no 'HdrS' at 0x202") }
        guard let version = image.le(UInt16.self, at: 0x206), version >= minimumVersion else {
            throw .bzImage("boot protocol \(String(image.le(UInt16.self, at: 0x206) ?? 0, radix: 16)) is older than 2.12")
        }
        guard let xload = image.le(UInt16.self, at: 0x236), xload & xlfKernel64 != 0 else {
            throw .bzImage("kernel has no 64-bit entry point (XLF_KERNEL_64)")
        }
        guard image[0x211] & loadedHigh != 0 else { throw .bzImage("not a bzImage (LOADED_HIGH clear)") }
        var setupSectors = Int(image[0x1f1])
        if setupSectors == 0 { setupSectors = 4 }
        let kernelOffset = (setupSectors + 1) * 512
        guard kernelOffset < image.count else { throw .bzImage("setup sectors (\(setupSectors)) run past end of file") }
        let initSize = UInt64(image.le(UInt32.self, at: 0x260) ?? 0)
        let initrdMax = UInt64(image.le(UInt32.self, at: 0x22c) ?? 0x37ff_ffff)

        let load = Layout.highMemoryStart
        let payload = image[kernelOffset...]
        let needed = max(UInt64(payload.count), initSize)
        guard memory.contains(GuestAddress(load), count: needed) else {
            throw .kernelDoesNotFit(start: load, end: load + needed, memory: memory.totalSize)
        }
        try mem { try memory.write(payload, at: GuestAddress(load)) }

        let headerEnd = min(0x202 + Int(image[0x201]), 0x280, image.count)
        let header = Array(image[setupHeaderStart..<max(setupHeaderStart, headerEnd)])
        return LoadedKernel(
            entry: .linux64(load + 0x200), start: load, end: load + needed, setupHeader: header,
            initrdAddressMax: initrdMax)
    }
}
