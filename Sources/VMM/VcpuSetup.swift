import Boot
import CKVM
import KVM

/// Turns the loader's boot CPU state into KVM registers.
enum VcpuSetup {
    static func segment(_ d: SegmentDescriptor, selector: UInt16) -> kvm_segment {
        var s = kvm_segment()
        s.base = d.base
        s.limit = d.limit
        s.selector = selector
        s.type = d.type
        s.present = d.present ? 1 : 0
        s.dpl = d.dpl
        s.db = d.defaultBig ? 1 : 0
        s.s = d.isSystem ? 0 : 1
        s.l = d.longMode ? 1 : 0
        s.g = d.granularity ? 1 : 0
        s.avl = d.available ? 1 : 0
        s.unusable = d.present ? 0 : 1
        return s
    }

    static func configure(_ vcpu: Vcpu, boot: BootCPUState) throws(KVMError) {
        var sregs = try vcpu.specialRegisters()
        let code = segment(boot.gdt[1], selector: BootCPUState.codeSelector)
        let data = segment(boot.gdt[2], selector: BootCPUState.dataSelector)
        sregs.cs = code
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        sregs.tr = segment(boot.gdt[boot.gdt.count - 1], selector: boot.tssSelector)
        sregs.gdt.base = Layout.gdtStart
        sregs.gdt.limit = UInt16(boot.gdt.count * 8 - 1)
        sregs.idt.base = Layout.idtStart
        sregs.idt.limit = 7
        switch boot.mode {
        case .protected32:
            sregs.cr0 = 0x1  // PE
            sregs.cr4 = 0
            sregs.efer = 0
        case .long64:
            sregs.cr3 = Layout.pml4Start
            sregs.cr4 = 0x20  // PAE
            sregs.cr0 = 0x8000_0001 | 0x10  // PG | PE | ET
            sregs.efer = 0x500  // LME | LMA
        }
        try vcpu.setSpecialRegisters(sregs)

        var regs = kvm_regs()
        regs.rflags = 0x2
        regs.rip = boot.entry
        regs.rsp = boot.rsp
        regs.rbp = boot.rsp
        regs.rsi = boot.rsi
        regs.rbx = boot.rbx
        try vcpu.setRegisters(regs)
        try vcpu.setDefaultFPU()
        // IA32_MISC_ENABLE: fast string operations, as firmware leaves it.
        try vcpu.setMSRs([(index: 0x1a0, value: 1)])
    }
}
