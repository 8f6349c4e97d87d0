import GuestMemory

/// Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI learns about its
/// vCPUs, the IOAPIC and the ISA interrupt routing. Written at Layout.mpTableStart (the last KiB
/// of low RAM, where Linux scans for "_MP_").
public enum MPTable {
    public static let ioapicAddress: UInt32 = 0xfec0_0000
    public static let lapicAddress: UInt32 = 0xfee0_0000
    static let irqCount = 24
    static let window = 0x400

    public static func bytes(vcpus: Int) throws(BootError) -> [UInt8] {
        guard vcpus >= 1, 16 + 44 + 20 * vcpus + 8 + 8 + 8 * irqCount + 16 <= window else { throw .tooManyVcpus(vcpus) }
        var table: [UInt8] = []
        func put<T: FixedWidthInteger>(_ value: T) {
            for i in 0..<MemoryLayout<T>.size { table.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
        }
        func putText(_ s: String, _ width: Int) {
            let b = Array(s.utf8.prefix(width))
            table += b + [UInt8](repeating: 0x20, count: width - b.count)
        }
        let ioapicID = UInt8(vcpus + 1)
        // Configuration table header (checksum and length patched below).
        putText("PCMP", 4); put(UInt16(0)); put(UInt8(4)); put(UInt8(0))
        putText("KATASWFT", 8); putText("MICROVM", 12)
        put(UInt32(0)); put(UInt16(0)); put(UInt16(0)); put(lapicAddress); put(UInt16(0)); put(UInt8(0)); put(UInt8(0))
        var entries: UInt16 = 0
        for cpu in 0..<vcpus {
            put(UInt8(0)); put(UInt8(cpu)); put(UInt8(0x14))
            put(UInt8(cpu == 0 ? 0x03 : 0x01))  // enabled, bootstrap processor
            put(UInt32(0x600)); put(UInt32(0x201)); put(UInt64(0))
            entries += 1
        }
        put(UInt8(1)); put(UInt8(0)); putText("ISA", 6); entries += 1
        put(UInt8(2)); put(ioapicID); put(UInt8(0x11)); put(UInt8(1)); put(ioapicAddress); entries += 1
        // Every ISA line is a plain vectored interrupt (type 0) on the IOAPIC pin of its number.
        // Listing IRQ 0 as ExtINT leaves the kernel's check_timer without a timer pin, and on a
        // real KVM setup_IO_APIC then dereferences an empty entry (NULL pointer oops).
        for irq in 0..<irqCount {
            put(UInt8(3)); put(UInt8(0)); put(UInt16(0)); put(UInt8(0)); put(UInt8(irq))
            put(ioapicID); put(UInt8(irq))
            entries += 1
        }
        // Local interrupts: LINT0 ExtINT on the BSP, LINT1 NMI on every CPU.
        put(UInt8(4)); put(UInt8(3)); put(UInt16(0)); put(UInt8(0)); put(UInt8(0)); put(UInt8(0)); put(UInt8(0))
        put(UInt8(4)); put(UInt8(1)); put(UInt16(0)); put(UInt8(0)); put(UInt8(0)); put(UInt8(0xff)); put(UInt8(1))
        entries += 2
        let length = UInt16(table.count)
        table[4] = UInt8(length & 0xff); table[5] = UInt8(length >> 8)
        table[34] = UInt8(entries & 0xff); table[35] = UInt8(entries >> 8)
        table[7] = checksum(table)

        let configAddress = UInt32(Layout.mpTableStart + 16)
        var floating: [UInt8] = Array("_MP_".utf8)
        for i in 0..<4 { floating.append(UInt8(truncatingIfNeeded: configAddress >> (8 * i))) }
        floating += [1, 4, 0, 0, 0, 0, 0, 0]
        floating[10] = checksum(floating)
        return floating + table
    }

    public static func write(vcpus: Int, into memory: some GuestMemory) throws(BootError) {
        let b = try bytes(vcpus: vcpus)
        try mem { try memory.write(b, at: GuestAddress(Layout.mpTableStart)) }
    }

    /// The byte that makes the sum of all bytes zero (mod 256).
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        UInt8(truncatingIfNeeded: 0 &- bytes.reduce(UInt8(0), &+))
    }
}
