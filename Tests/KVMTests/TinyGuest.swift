import CKVM
import Glibc
import KVM
import Testing

/// A one-vCPU VM without irqchip, 64 KiB of RAM at guest address 0, running 16-bit real-mode
/// code placed at 0x1000 (CS base 0). Exits come back to the test one by one.
final class TinyGuest {
    static let memorySize = 0x10000
    static let codeAddress: UInt64 = 0x1000
    let vm: VM
    let vcpu: Vcpu
    let memory: UnsafeMutableRawPointer

    init(code: [UInt8]) throws {
        let kvm = try Kvm()
        vm = try kvm.createVM()
        guard let p = mmap(nil, Self.memorySize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            p != MAP_FAILED
        else { throw KVMError.mmapRun(.current) }
        memory = p
        (memory + Int(Self.codeAddress)).copyMemory(from: code, byteCount: code.count)
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: UInt64(Self.memorySize), hostAddress: memory)
        try vm.setIdentityMapAddress(0xfffb_c000)
        try vm.setTSSAddress(0xfffb_d000)
        vcpu = try vm.createVcpu(id: 0)
        var sregs = try vcpu.specialRegisters()
        sregs.cs.base = 0
        sregs.cs.selector = 0
        try vcpu.setSpecialRegisters(sregs)
        var regs = try vcpu.registers()
        regs.rip = Self.codeAddress
        regs.rflags = 0x2
        try vcpu.setRegisters(regs)
    }

    /// Switches the vCPU to flat 32-bit protected mode (paging off) with the given IDT limit.
    func enterProtectedMode(idtLimit: UInt16) throws {
        var sregs = try vcpu.specialRegisters()
        sregs.cr0 |= 1
        sregs.cs.selector = 8
        sregs.cs.type = 0xb
        sregs.cs.s = 1
        sregs.cs.present = 1
        sregs.cs.db = 1
        sregs.cs.g = 1
        sregs.cs.limit = 0xffff_ffff
        sregs.idt.base = 0
        sregs.idt.limit = idtLimit
        try vcpu.setSpecialRegisters(sregs)
    }

    deinit { munmap(memory, Self.memorySize) }

    /// Runs to the next exit that is not a spurious interruption.
    func next() throws -> VcpuExit {
        while true {
            let exit = try vcpu.runOnce()
            if exit != .interrupted { return exit }
        }
    }
}
