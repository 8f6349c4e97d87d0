import Boot
import CKVM
import GuestMemory
import KVM

/// A tiny 64-bit guest for finding out what this host's KVM runs (the HostProbes module above
/// the VMM: the long-mode instruction probe and the ring-3 SYSCALL probe): 2 MiB of RAM with Boot's GDT and identity page tables, one vCPU
/// in long mode set up as the VMM sets up a boot vCPU, and `code` at `Layout.probeCodeStart`.
/// Every address comes from `Layout`.
public struct ProbeGuest {
    public static let memorySize: UInt64 = 2 << 20
    /// CS of ring-3 code in a guest with a SYSCALL handler, and after SYSRET.
    public static let userCodeSelector = BootCPUState.userCodeSelector

    public let vm: VM
    public let vcpu: Vcpu
    /// The GDT as written at `Layout.gdtStart`.
    public let gdt: [SegmentDescriptor]
    /// Kept alive while the vCPU runs: KVM maps it as the guest's RAM.
    public let memory: MmapGuestMemory
    /// What `KVM_GET_SUPPORTED_CPUID` reported, before `cpuid` filtered it for the vCPU.
    public let supportedCPUID: [CPUIDEntry]

    /// Builds the guest.
    /// - Parameters:
    ///   - code: guest code at `Layout.probeCodeStart`, entered in ring 0; or in ring 3 (IOPL 3,
    ///     so it may use OUT) when there is a `syscallHandler`.
    ///   - syscallHandler: ring-0 code at `Layout.probeSyscallHandlerStart`, which SYSCALL enters
    ///     (LSTAR; STAR's SYSRET base is the kernel data selector, so SYSRET returns with the
    ///     GDT's user segments). The GDT then holds ring-3 segments and the pages are user-accessible.
    ///   - cpuid: the CPUID table for the vCPU, from what KVM supports.
    public init(
        code: [UInt8], syscallHandler: [UInt8]? = nil, kvm: Kvm? = nil,
        cpuid: ([CPUIDEntry]) -> [CPUIDEntry] = { $0 }
    ) throws(VMMError) {
        let userMode = syscallHandler != nil
        let kvm = try wrap { () throws(KVMError) -> Kvm in
            if let kvm { return kvm }
            return try Kvm()
        }
        vm = try wrap { () throws(KVMError) in try kvm.createVM() }
        do {
            memory = try MmapGuestMemory(regions: [GuestRegion(start: GuestAddress(0), size: Self.memorySize)])
        } catch {
            throw .allocateMemory(size: Self.memorySize, error)
        }
        do {
            gdt = try CPUSetup.writeTables(for: .long64, into: memory, userMode: userMode)
        } catch {
            throw .boot(error)
        }
        var programs = [(Layout.probeCodeStart, code)]
        if let syscallHandler { programs.append((Layout.probeSyscallHandlerStart, syscallHandler)) }
        for (address, bytes) in programs {
            do {
                try memory.write(bytes, at: GuestAddress(address))
            } catch {
                throw .boot(.memory(.outOfBounds(address: GuestAddress(address), length: UInt64(bytes.count))))
            }
        }
        let boot = BootCPUState(
            mode: .long64, entry: Layout.probeCodeStart, rsi: 0, rbx: 0, rsp: Layout.bootStackPointer, gdt: gdt)
        let supported = try wrap { () throws(KVMError) in try kvm.supportedCPUID() }
        supportedCPUID = supported
        let (vm, memory) = (vm, memory)
        vcpu = try wrap { () throws(KVMError) in
            try vm.setUserMemoryRegion(
                slot: 0, guestAddress: 0, size: Self.memorySize, hostAddress: memory.hostAddress(ofRegion: 0))
            try vm.setIdentityMapAddress(Layout.kvmIdentityMapStart)
            try vm.setTSSAddress(Layout.kvmTSSStart)
            let vcpu = try vm.createVcpu(id: 0)
            try vcpu.setCPUID(cpuid(supported))
            try VcpuSetup.configure(vcpu, boot: boot)
            return vcpu
        }
        if userMode { try enterRingThree() }
    }

    /// Moves the vCPU to ring 3 with SYSCALL enabled: user CS and SS..GS from the GDT, EFER.SCE,
    /// STAR and LSTAR for the handler, and IOPL 3.
    private func enterRingThree() throws(VMMError) {
        let (vcpu, gdt) = (vcpu, gdt)
        try wrap { () throws(KVMError) in
            var sregs = try vcpu.specialRegisters()
            sregs.cs = VcpuSetup.segment(gdt[4], selector: BootCPUState.userCodeSelector)
            let data = VcpuSetup.segment(gdt[3], selector: BootCPUState.userDataSelector)
            (sregs.ss, sregs.ds, sregs.es, sregs.fs, sregs.gs) = (data, data, data, data, data)
            sregs.efer |= 0x1  // SCE
            try vcpu.setSpecialRegisters(sregs)
            let star = UInt64(BootCPUState.dataSelector) << 48 | UInt64(BootCPUState.codeSelector) << 32
            try vcpu.setMSRs([
                (index: 0xc000_0081, value: star),  // STAR
                (index: 0xc000_0082, value: Layout.probeSyscallHandlerStart),  // LSTAR
                (index: 0xc000_0084, value: 0),  // SFMASK
            ])
            var regs = try vcpu.registers()
            regs.rflags |= 0x3000  // IOPL 3
            try vcpu.setRegisters(regs)
        }
    }

    /// Runs the vCPU to its next exit; the guest's RAM stays mapped meanwhile.
    public func runOnce() throws(VMMError) -> VcpuExit {
        defer { withExtendedLifetime(memory) {} }
        return try wrap { () throws(KVMError) in try vcpu.runOnce() }
    }
}
