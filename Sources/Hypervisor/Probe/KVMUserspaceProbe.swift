import CShims
import GuestMemory
import KVM
import VMM

/// Can this host's KVM run a guest userspace? Runs a tiny 64-bit guest that starts in ring 3,
/// executes SYSCALL, and reports its code segment from the SYSCALL handler (must be ring 0) and
/// again after SYSRET (must be ring 3). A Linux userspace needs exactly this transition; on hosts
/// whose KVM emulates the guest badly, the handler runs in ring 3, or the vCPU fails.
enum KVMUserspaceProbe {
    enum Outcome: Equatable, Sendable {
        case works
        case fails(String)
    }

    // Guest layout (one 2 MiB identity-mapped, user-accessible page).
    static let gdtAddress: UInt64 = 0x500
    static let pml4Address: UInt64 = 0x2000
    static let tssAddress: UInt64 = 0x6000
    static let userCode: UInt64 = 0x1000
    static let syscallHandler: UInt64 = 0x1100
    static let reportPort: UInt16 = 0x99

    // Selectors: kernel code 0x08, kernel data 0x10, user data 0x18, user code 0x20, TSS 0x28.
    static let star: UInt64 = (0x10 << 48) | (0x08 << 32)

    /// ring 3: syscall; mov ax, cs; out 0x99, ax; jmp $
    static let userProgram: [UInt8] = [0x0f, 0x05, 0x66, 0x8c, 0xc8, 0x66, 0xe7, 0x99, 0xeb, 0xfe]
    /// ring 0 (LSTAR): mov ax, cs; out 0x99, ax; sysretq
    static let handlerProgram: [UInt8] = [0x66, 0x8c, 0xc8, 0x66, 0xe7, 0x99, 0x48, 0x0f, 0x07]

    static func run() -> Outcome {
        do {
            return try runGuest()
        } catch {
            return .fails("setting up the probe guest: \(error)")
        }
    }

    private static func runGuest() throws -> Outcome {
        let kvm = try Kvm()
        let vm = try kvm.createVM()
        let size: UInt64 = 2 << 20
        let memory = try MmapGuestMemory(regions: [GuestRegion(start: GuestAddress(0), size: size)])
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: size, hostAddress: memory.hostAddress(ofRegion: 0))
        try vm.setTSSAddress(0xfffb_d000)
        try writeGuest(memory)

        let vcpu = try vm.createVcpu(id: 0)
        try vcpu.setCPUID(try kvm.supportedCPUID())
        var sregs = try vcpu.specialRegisters()
        sregs.cs = segment(selector: 0x23, type: 0xb, dpl: 3, long: true)
        sregs.ss = segment(selector: 0x1b, type: 0x3, dpl: 3, long: false)
        sregs.ds = sregs.ss
        sregs.es = sregs.ss
        sregs.fs = sregs.ss
        sregs.gs = sregs.ss
        var tr = segment(selector: 0x28, type: 0xb, dpl: 0, long: false)
        tr.s = 0
        tr.base = tssAddress
        tr.limit = 0x67
        tr.g = 0
        sregs.tr = tr
        sregs.gdt.base = gdtAddress
        sregs.gdt.limit = 7 * 8 - 1
        sregs.cr3 = pml4Address
        sregs.cr4 = 0x20  // PAE
        sregs.cr0 = 0x8000_0011  // PG | ET | PE
        sregs.efer = 0x501  // LMA | LME | SCE
        try vcpu.setSpecialRegisters(sregs)
        try vcpu.setMSRs([
            (index: 0xc000_0081, value: star), (index: 0xc000_0082, value: syscallHandler), (index: 0xc000_0084, value: 0),
        ])
        var regs = kvm_regs()
        regs.rip = userCode
        regs.rsp = 0x8000
        regs.rflags = 0x3002  // IOPL 3: ring 3 may use OUT
        try vcpu.setRegisters(regs)

        var reports: [UInt16] = []
        for _ in 0..<16 {
            let exit = try vcpu.runOnce()
            switch exit {
            case .ioOut(let port, _, let data) where port == reportPort && data.count == 2:
                reports.append(UInt16(data[0]) | UInt16(data[1]) << 8)
                if reports.count == 2 { return verdict(reports) }
            case .interrupted:
                continue
            default:
                let seen = reports.map { "CS=0x" + String($0, radix: 16) }.joined(separator: ", ")
                return .fails("after \(reports.count) report(s) [\(seen)] the vCPU exited with \(exit)")
            }
        }
        return .fails("no verdict after 16 exits (reports \(reports))")
    }

    static func verdict(_ reports: [UInt16]) -> Outcome {
        guard reports.count == 2 else { return .fails("incomplete reports \(reports)") }
        guard reports[0] & 3 == 0 else {
            return .fails("the SYSCALL handler ran with CS=0x\(String(reports[0], radix: 16)) (ring \(reports[0] & 3), not 0)")
        }
        guard reports[1] == 0x23 else {
            return .fails("after SYSRET CS=0x\(String(reports[1], radix: 16)), expected 0x23 (ring 3)")
        }
        return .works
    }

    private static func writeGuest(_ memory: some GuestMemory) throws {
        // GDT: null, kernel code64, kernel data, user data, user code64, TSS (16 bytes).
        let gdt: [UInt64] = [
            0,
            descriptor(flags: 0xa09b), descriptor(flags: 0xc093), descriptor(flags: 0xc0f3), descriptor(flags: 0xa0fb),
            tssDescriptorLow(), 0,
        ]
        try memory.write(gdt.flatMap(littleEndian), at: GuestAddress(gdtAddress))
        // Identity map of the first 2 MiB, user-accessible: PML4 -> PDPT -> PD (2 MiB page).
        try memory.write(littleEndian((pml4Address + 0x1000) | 0x7), at: GuestAddress(pml4Address))
        try memory.write(littleEndian((pml4Address + 0x2000) | 0x7), at: GuestAddress(pml4Address + 0x1000))
        try memory.write(littleEndian(UInt64(0x87)), at: GuestAddress(pml4Address + 0x2000))
        try memory.write(userProgram, at: GuestAddress(userCode))
        try memory.write(handlerProgram, at: GuestAddress(syscallHandler))
    }

    private static func descriptor(flags: UInt64) -> UInt64 {
        // base 0, limit 0xfffff; flags hold access byte (bits 0-7) and granularity nibble (12-15).
        0xffff | (flags & 0xff) << 40 | 0xf << 48 | (flags >> 12) << 52
    }

    private static func tssDescriptorLow() -> UInt64 {
        0x67 | (tssAddress & 0xffffff) << 16 | 0x8b << 40 | (tssAddress >> 24 & 0xff) << 56
    }

    private static func segment(selector: UInt16, type: UInt8, dpl: UInt8, long: Bool) -> kvm_segment {
        var s = kvm_segment()
        s.base = 0
        s.limit = 0xffff_ffff
        s.selector = selector
        s.type = type
        s.present = 1
        s.dpl = dpl
        s.db = long ? 0 : 1
        s.s = 1
        s.l = long ? 1 : 0
        s.g = 1
        return s
    }

    private static func littleEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
