import GuestMemory

/// A GDT descriptor in its 64-bit packed form, plus the decoded fields KVM's segment registers need.
public struct SegmentDescriptor: Equatable, Sendable {
    public var raw: UInt64

    /// flags: the 16 bits (G, D/B, L, AVL in the high nibble; P, DPL, S, type in the low byte).
    public init(flags: UInt16, base: UInt32, limit: UInt32) {
        var v = UInt64(limit & 0xffff)
        v |= UInt64(base & 0xff_ffff) << 16
        v |= UInt64(flags & 0xf0ff) << 40
        v |= UInt64((limit >> 16) & 0xf) << 48
        v |= UInt64(base >> 24) << 56
        raw = v
    }

    public var base: UInt64 { (raw >> 16) & 0xff_ffff | ((raw >> 56) & 0xff) << 24 }
    public var limitRaw: UInt32 { UInt32(raw & 0xffff) | UInt32((raw >> 48) & 0xf) << 16 }
    public var granularity: Bool { (raw >> 55) & 1 != 0 }
    /// The effective limit in bytes - 1, as KVM wants it.
    public var limit: UInt32 { granularity ? (limitRaw << 12) | 0xfff : limitRaw }
    public var type: UInt8 { UInt8((raw >> 40) & 0xf) }
    public var isSystem: Bool { (raw >> 44) & 1 == 0 }
    public var dpl: UInt8 { UInt8((raw >> 45) & 3) }
    public var present: Bool { (raw >> 47) & 1 != 0 }
    public var available: Bool { (raw >> 52) & 1 != 0 }
    public var longMode: Bool { (raw >> 53) & 1 != 0 }
    public var defaultBig: Bool { (raw >> 54) & 1 != 0 }

    public static let null = SegmentDescriptor(flags: 0, base: 0, limit: 0)
    public static let code64 = SegmentDescriptor(flags: 0xa09b, base: 0, limit: 0xfffff)
    public static let code32 = SegmentDescriptor(flags: 0xc09b, base: 0, limit: 0xfffff)
    public static let data = SegmentDescriptor(flags: 0xc093, base: 0, limit: 0xfffff)
    public static let tss = SegmentDescriptor(flags: 0x808b, base: 0, limit: 0xfffff)
    /// Ring-3 segments, for probe guests that run user code.
    public static let userCode64 = SegmentDescriptor(flags: 0xa0fb, base: 0, limit: 0xfffff)
    public static let userData = SegmentDescriptor(flags: 0xc0f3, base: 0, limit: 0xfffff)
}

/// The CPU state to enter the kernel with; the VMM turns it into KVM registers.
public struct BootCPUState: Equatable, Sendable {
    public enum Mode: Equatable, Sendable {
        /// 32-bit protected mode, paging off (PVH).
        case protected32
        /// 64-bit long mode with the identity page tables at Layout.pml4Start.
        case long64
    }

    public var mode: Mode
    public var entry: UInt64
    public var rsi: UInt64
    public var rbx: UInt64
    public var rsp: UInt64
    /// GDT entries as written at Layout.gdtStart: [null, code, data, tss], or with ring 3
    /// [null, code, data, user data, user code, tss]. The TSS is always last.
    public var gdt: [SegmentDescriptor]

    public init(mode: Mode, entry: UInt64, rsi: UInt64, rbx: UInt64, rsp: UInt64, gdt: [SegmentDescriptor]) {
        self.mode = mode
        self.entry = entry
        self.rsi = rsi
        self.rbx = rbx
        self.rsp = rsp
        self.gdt = gdt
    }

    public static let codeSelector: UInt16 = 0x08
    public static let dataSelector: UInt16 = 0x10
    /// Ring-3 selectors (RPL 3) in the GDT with user segments: where SYSRET puts user SS and CS
    /// when STAR's SYSRET base is `dataSelector` (SS = base + 8, CS = base + 16).
    public static let userDataSelector: UInt16 = 0x18 | 3
    public static let userCodeSelector: UInt16 = 0x20 | 3

    /// The TSS's selector: its GDT entry is the last one (0x18 in the boot GDT).
    public var tssSelector: UInt16 { UInt16((gdt.count - 1) * 8) }
}

public enum CPUSetup {
    /// Writes the GDT, an empty IDT and (for long mode) identity page tables for the first 1 GiB.
    /// With `userMode` (long mode only: the ring-3 probe guest) the GDT also holds ring-3 code and
    /// data segments and the pages are user-accessible.
    public static func writeTables(
        for mode: BootCPUState.Mode, into memory: some GuestMemory, userMode: Bool = false
    ) throws(BootError) -> [SegmentDescriptor] {
        let code: SegmentDescriptor = mode == .long64 ? .code64 : .code32
        let gdt: [SegmentDescriptor] =
            userMode ? [.null, code, .data, .userData, .userCode64, .tss] : [.null, code, .data, .tss]
        // Present and writable; user-accessible too for a ring-3 guest.
        let access: UInt64 = userMode ? 0x07 : 0x03
        var bytes: [UInt8] = []
        for d in gdt { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: d.raw >> (8 * i))) } }
        try mem { try memory.write(bytes, at: GuestAddress(Layout.gdtStart)) }
        try mem { try memory.store(UInt64(0), at: GuestAddress(Layout.idtStart)) }
        if mode == .long64 {
            try mem { try memory.store(Layout.pdptStart | access, at: GuestAddress(Layout.pml4Start)) }
            try mem { try memory.store(Layout.pdStart | access, at: GuestAddress(Layout.pdptStart)) }
            // 512 2-MiB pages: page-size, with the access bits above.
            for i in UInt64(0)..<512 {
                try mem { try memory.store((i << 21) | 0x80 | access, at: GuestAddress(Layout.pdStart + i * 8)) }
            }
        }
        return gdt
    }
}
