import KVM

/// The registers worth a log line when a vCPU dies: where it was and in which mode.
enum RegisterDump {
    static func summary(_ vcpu: Vcpu) -> String {
        guard let r = try? vcpu.registers(), let s = try? vcpu.specialRegisters() else {
            return "registers unreadable"
        }
        func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
        return "rip=\(hex(r.rip)) rsp=\(hex(r.rsp)) rflags=\(hex(r.rflags)) rax=\(hex(r.rax)) rbx=\(hex(r.rbx)) "
            + "rcx=\(hex(r.rcx)) rdx=\(hex(r.rdx)) rsi=\(hex(r.rsi)) rdi=\(hex(r.rdi)) rbp=\(hex(r.rbp)) "
            + "cs=\(hex(UInt64(s.cs.selector))) cr0=\(hex(s.cr0)) cr2=\(hex(s.cr2)) cr3=\(hex(s.cr3)) "
            + "cr4=\(hex(s.cr4)) efer=\(hex(s.efer)) idt=\(hex(s.idt.base))/\(hex(UInt64(s.idt.limit)))"
    }
}

extension VirtualMachine {
    /// Each vCPU's registers in one line (diagnostics: where a guest that stopped answering is).
    /// Reads a vCPU's registers only while it is out of KVM_RUN: pause the VM first.
    public func registerSummary() -> String {
        vcpus.map { "vcpu\($0.id): \(RegisterDump.summary($0))" }.joined(separator: "; ")
    }
}
