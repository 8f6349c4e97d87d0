import GuestMemory

/// Puts a kernel, initrd and command line into guest memory with every boot structure, and says
/// how to enter it.
public enum BootConfigurator {
    /// The smallest guest we agree to build.
    public static let minimumMemory: UInt64 = 16 << 20

    public static func setup(
        memory: some GuestMemory, kernelImage: [UInt8], initrd: [UInt8]?, cmdline: Cmdline, vcpus: Int
    ) throws(BootError) -> BootCPUState {
        guard memory.totalSize >= minimumMemory else {
            throw .memoryTooSmall(size: memory.totalSize, minimum: minimumMemory)
        }
        let ram = memory.regions.map { (start: $0.start.rawValue, size: $0.size) }
        let kernel = try KernelLoader.load(kernelImage, into: memory)

        var initrdPlace: (address: UInt64, size: UInt64)? = nil
        if let initrd, !initrd.isEmpty {
            let address = try InitrdPlacement.address(
                size: UInt64(initrd.count), ramRegions: ram, kernelEnd: kernel.end, addressMax: kernel.initrdAddressMax)
            try mem { try memory.write(initrd, at: GuestAddress(address)) }
            initrdPlace = (address, UInt64(initrd.count))
        }
        let cmdBytes = cmdline.bytes
        guard cmdBytes.count <= Layout.cmdlineMaxSize else {
            throw .cmdline(.tooLarge(length: cmdBytes.count - 1, capacity: Layout.cmdlineMaxSize))
        }
        try mem { try memory.write(cmdBytes, at: GuestAddress(Layout.cmdlineStart)) }
        let e820 = E820.map(ramRegions: ram)
        try MPTable.write(vcpus: vcpus, into: memory)

        switch kernel.entry {
        case .pvh(let entry):
            try PVHStartInfo.write(into: memory, cmdlineAddress: Layout.cmdlineStart, initrd: initrdPlace, e820: e820)
            let gdt = try CPUSetup.writeTables(for: .protected32, into: memory)
            return BootCPUState(
                mode: .protected32, entry: entry, rsi: 0, rbx: Layout.pvhInfoStart, rsp: 0, gdt: gdt)
        case .linux64(let entry):
            let page = try BootParams.build(
                setupHeader: kernel.setupHeader, cmdlineAddress: Layout.cmdlineStart, cmdlineSize: cmdBytes.count,
                initrd: initrdPlace, e820: e820)
            try mem { try memory.write(page, at: GuestAddress(Layout.zeroPageStart)) }
            let gdt = try CPUSetup.writeTables(for: .long64, into: memory)
            return BootCPUState(
                mode: .long64, entry: entry, rsi: Layout.zeroPageStart, rbx: 0, rsp: Layout.bootStackPointer, gdt: gdt)
        }
    }
}
