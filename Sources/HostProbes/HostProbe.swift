import KVM
import VMM

/// What this host's KVM can run, found by running tiny guests (not by host name).
public enum HostProbe {
    /// The result of executing one probe instruction in a 64-bit tiny guest.
    public enum Outcome: Equatable, Sendable {
        /// The instruction ran and produced the right result: guest code runs natively.
        case native
        /// KVM could not execute it (emulation failure or a fault): guest code goes through an
        /// instruction emulator that lacks it.
        case emulated(String)
    }

    /// Runs `popcnt` in 64-bit long mode. On VT-x/AMD-V hardware it executes natively; on a KVM
    /// that emulates guest kernel code (our build hosts, docs/vmm.md) the emulator has no POPCNT
    /// and reports an emulation failure. A CPU without POPCNT (QEMU's `qemu64` model, say) raises
    /// #UD itself, which in this IDT-less guest ends as a triple fault: the CPU ran the guest.
    public static func probeLongModeInstructions(kvm: Kvm? = nil) throws(VMMError) -> Outcome {
        let code: [UInt8] = [
            0xbb, 0xff, 0x00, 0x00, 0x00,  // mov ebx, 0xff
            0xf3, 0x0f, 0xb8, 0xc3,        // popcnt eax, ebx   (eax = 8)
            0xe6, 0x10,                    // out 0x10, al
            0xf4,                          // hlt
        ]
        let guest = try ProbeGuest(code: code, kvm: kvm) { CPUTemplate.host.apply(to: $0, vcpu: 0, of: 1) }
        let hasPopcnt = guest.supportedCPUID.contains { $0.function == 1 && $0.index == 0 && $0.ecx & (1 << 23) != 0 }
        for _ in 0..<4 {
            let exit = try guest.runOnce()
            switch exit {
            case .interrupted: continue
            case .ioOut(0x10, 1, [8]): return .native
            case .shutdown where !hasPopcnt: return .native
            default: return .emulated("\(exit)")
            }
        }
        return .emulated("no exit after 4 interruptions")
    }

    /// The CPU template for this host: `.host` when guest code runs natively, else `.emulated`.
    public static func defaultTemplate(kvm: Kvm? = nil) throws(VMMError) -> CPUTemplate {
        switch try probeLongModeInstructions(kvm: kvm) {
        case .native: .host
        case .emulated: .emulated
        }
    }
}
