import Boot
import GuestMemory
import Testing

@Test func e820ForSmallGuestHasLowRAMReservedAndHighRAM() {
    let map = E820.map(ramRegions: Layout.ramRegions(size: 256 << 20))
    #expect(map == [
        E820Entry(address: 0, size: 0x9fc00, type: E820Entry.ram),
        E820Entry(address: 0x9fc00, size: 0x100000 - 0x9fc00, type: E820Entry.reserved),
        E820Entry(address: 0x100000, size: (256 << 20) - 0x100000, type: E820Entry.ram),
    ])
}

@Test func e820ForLargeGuestSkipsTheMMIOHole() {
    let map = E820.map(ramRegions: Layout.ramRegions(size: 4 << 30))
    #expect(map.count == 4)
    #expect(map[2] == E820Entry(address: 0x100000, size: 0xc000_0000 - 0x100000, type: E820Entry.ram))
    #expect(map[3] == E820Entry(address: 0x1_0000_0000, size: 1 << 30, type: E820Entry.ram))
}

@Test func cmdlineValidatesAndLimits() throws {
    var c = try Cmdline("console=ttyS0  reboot=k", capacity: 32)
    try c.insert("panic", "1")
    #expect(c.text == "console=ttyS0 reboot=k panic=1")
    #expect(c.contains("reboot"))
    #expect(!c.contains("reb"))
    #expect(c.bytes.last == 0)
    #expect(throws: CmdlineError.tooLarge(length: 34, capacity: 32)) { try c.insert("x", "y") }
    #expect(throws: CmdlineError.invalidCharacter(0)) { try Cmdline("a\u{0}b") }
    #expect(throws: CmdlineError.invalidCharacter(0x0a)) { try Cmdline("a\nb") }
    var d = Cmdline()
    #expect(throws: CmdlineError.hasSpace("a b")) { try d.insert("a b") }
    #expect(throws: CmdlineError.hasEquals("a=b")) { try d.insert("a=b", "c") }
    #expect(throws: CmdlineError.emptyKey) { try d.insert("") }
    // Exactly at the limit: 2047 characters plus NUL fit, 2048 do not.
    #expect(throws: Never.self) { try Cmdline(String(repeating: "a", count: 2047)) }
    #expect(throws: CmdlineError.tooLarge(length: 2048, capacity: 2048)) { try Cmdline(String(repeating: "a", count: 2048)) }
}

@Test func initrdGoesToTheTopOfLowRAMPageAligned() throws {
    let ram = Layout.ramRegions(size: 64 << 20)
    let address = try InitrdPlacement.address(size: 5000, ramRegions: ram, kernelEnd: 0x200000, addressMax: 0x7fff_ffff)
    #expect(address == ((64 << 20) - 5000) & ~0xfff)
    #expect(address + 5000 <= 64 << 20)
}

@Test func initrdRespectsAddressMaxAndRefusesWhenItDoesNotFit() throws {
    let ram = Layout.ramRegions(size: 64 << 20)
    let capped = try InitrdPlacement.address(size: 0x1000, ramRegions: ram, kernelEnd: 0x200000, addressMax: 0xff_ffff)
    #expect(capped == 0xff_f000)
    #expect(throws: BootError.initrdDoesNotFit(size: 63 << 20, lowest: 0x200000, highest: 64 << 20)) {
        try InitrdPlacement.address(size: 63 << 20, ramRegions: ram, kernelEnd: 0x200000, addressMax: 0x7fff_ffff)
    }
}

@Test func mpTableHasValidChecksumsAndOneEntryPerCPU() throws {
    let bytes = try MPTable.bytes(vcpus: 2)
    #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
    #expect(bytes[0..<16].reduce(UInt8(0), &+) == 0)
    let table = Array(bytes[16...])
    #expect(Array(table[0..<4]) == Array("PCMP".utf8))
    let length = Int(table[4]) | Int(table[5]) << 8
    #expect(length == table.count)
    #expect(table.reduce(UInt8(0), &+) == 0)
    #expect(table.filter { _ in true }.count > 44)
    #expect(table[44] == 0 && table[64] == 0)  // two processor entries
    #expect(table[44 + 3] == 0x03 && table[64 + 3] == 0x01)  // BSP flag only on CPU 0
    #expect(throws: BootError.tooManyVcpus(64)) { try MPTable.bytes(vcpus: 64) }
}

/// Linux's check_timer finds the timer through the IRQ 0 entry: listed as ExtINT (type 3) it has
/// no IOAPIC pin, and on a real KVM setup_IO_APIC oopsed on the empty entry.
@Test func mpTableRoutesEveryISAIRQAsAVectoredInterruptOnItsOwnPin() throws {
    for vcpus in [1, 2] {
        let table = Array(try MPTable.bytes(vcpus: vcpus)[16...])
        let first = 44 + 20 * vcpus + 8 + 8  // header, processors, bus, IOAPIC
        for irq in 0..<24 {
            let entry = Array(table[(first + 8 * irq)..<(first + 8 * irq + 8)])
            #expect(entry[0] == 3, "entry \(irq) is an I/O interrupt assignment")
            #expect(entry[1] == 0, "IRQ \(irq) is a vectored interrupt (mp_INT), not ExtINT")
            #expect(entry[5] == UInt8(irq) && entry[7] == UInt8(irq), "IRQ \(irq) goes to IOAPIC pin \(irq)")
        }
    }
}

@Test func pvhSetupWritesStartInfoCmdlineInitrdAndMemoryMap() throws {
    let memory = HeapGuestMemory(size: 64 << 20)
    let image = Synthetic.elf(payload: marker, pvhEntry: 0x100004)
    let initrd = [UInt8](repeating: 0x5a, count: 10000)
    let state = try BootConfigurator.setup(
        memory: memory, kernelImage: image, initrd: initrd, cmdline: try Cmdline("console=ttyS0"), vcpus: 1)
    #expect(state.mode == .protected32)
    #expect(state.entry == 0x100004)
    #expect(state.rbx == Layout.pvhInfoStart)
    let info = GuestAddress(Layout.pvhInfoStart)
    #expect(try memory.load(UInt32.self, at: info) == 0x336e_c578)
    #expect(try memory.load(UInt32.self, at: info.adding(12)) == 1)  // one module
    #expect(try memory.load(UInt64.self, at: info.adding(24)) == Layout.cmdlineStart)
    #expect(try memory.load(UInt32.self, at: info.adding(48)) == 3)  // e820 entries
    #expect(try memory.read(count: 14, at: GuestAddress(Layout.cmdlineStart)) == Array("console=ttyS0\0".utf8))
    let initrdAddress = try memory.load(UInt64.self, at: GuestAddress(Layout.pvhModlistStart))
    #expect(try memory.load(UInt64.self, at: GuestAddress(Layout.pvhModlistStart + 8)) == 10000)
    #expect(initrdAddress == ((64 << 20) - 10000) & ~0xfff)
    #expect(try memory.read(count: 4, at: GuestAddress(initrdAddress)) == [0x5a, 0x5a, 0x5a, 0x5a])
    #expect(try memory.read(count: 4, at: GuestAddress(Layout.mpTableStart)) == Array("_MP_".utf8))
}

@Test func linux64SetupWritesZeroPageAndPageTables() throws {
    let memory = HeapGuestMemory(size: 64 << 20)
    let state = try BootConfigurator.setup(
        memory: memory, kernelImage: Synthetic.bzImage(payload: marker), initrd: [1, 2, 3],
        cmdline: try Cmdline("console=ttyS0"), vcpus: 1)
    #expect(state.mode == .long64)
    #expect(state.entry == 0x100200)
    #expect(state.rsi == Layout.zeroPageStart)
    let zp = Layout.zeroPageStart
    #expect(try memory.load(UInt16.self, at: GuestAddress(zp + 0x1fe)) == 0xaa55)
    #expect(try memory.load(UInt8.self, at: GuestAddress(zp + 0x210)) == 0xff)
    #expect(try memory.load(UInt32.self, at: GuestAddress(zp + 0x228)) == UInt32(Layout.cmdlineStart))
    #expect(try memory.load(UInt32.self, at: GuestAddress(zp + 0x21c)) == 3)
    #expect(try memory.load(UInt8.self, at: GuestAddress(zp + 0x1e8)) == 3)
    #expect(try memory.load(UInt64.self, at: GuestAddress(Layout.pml4Start)) == Layout.pdptStart | 3)
    #expect(try memory.load(UInt64.self, at: GuestAddress(Layout.pdStart + 8)) == (1 << 21) | 0x83)
    #expect(try memory.load(UInt64.self, at: GuestAddress(Layout.gdtStart + 8)) == SegmentDescriptor.code64.raw)
}

@Test func setupRefusesTinyMemoryAndOversizedInitrd() throws {
    #expect(throws: BootError.memoryTooSmall(size: 8 << 20, minimum: 16 << 20)) {
        try BootConfigurator.setup(
            memory: HeapGuestMemory(size: 8 << 20), kernelImage: Synthetic.elf(payload: marker), initrd: nil,
            cmdline: Cmdline(), vcpus: 1)
    }
    #expect(throws: BootError.self) {
        try BootConfigurator.setup(
            memory: HeapGuestMemory(size: 16 << 20), kernelImage: Synthetic.elf(payload: marker),
            initrd: [UInt8](repeating: 0, count: 16 << 20), cmdline: Cmdline(), vcpus: 1)
    }
}

@Test func segmentDescriptorsDecode() {
    let c = SegmentDescriptor.code64
    #expect(c.raw == 0x00af_9b00_0000_ffff)
    #expect(c.longMode && !c.defaultBig && c.present && c.granularity && c.limit == 0xffff_ffff && c.type == 0xb)
    #expect(SegmentDescriptor.data.raw == 0x00cf_9300_0000_ffff)
    #expect(SegmentDescriptor.code32.defaultBig && !SegmentDescriptor.code32.longMode)
}
