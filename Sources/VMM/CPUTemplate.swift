import KVM

/// Which CPU features the guest sees: KVM_GET_SUPPORTED_CPUID filtered through a template,
/// then per-vCPU topology (as Firecracker's CPU templates do).
public enum CPUTemplate: String, Sendable, CaseIterable {
    /// Everything KVM supports: for hosts where guest code runs natively (VT-x/AMD-V).
    case host
    /// For hosts whose KVM runs guest kernel code in an instruction emulator (measured here:
    /// docs/vmm.md). Hides what that emulator fails on or what the kernel then misuses:
    /// CMPXCHG16B, POPCNT, XSAVE/OSXSAVE/AVX, SMEP/SMAP (CLAC/STAC), UMIP, PKU, PCID/INVPCID.
    /// Deliberately not hidden: RDRAND/RDSEED (they work here, and without them the guest's
    /// entropy collection stalls for minutes under emulation: measured 07:47-07:55 UTC).
    case emulated

    /// (leaf, register, bits to clear). Registers: 0 eax, 1 ebx, 2 ecx, 3 edx.
    var hidden: [(leaf: UInt32, subleaf: UInt32?, register: Int, mask: UInt32)] {
        switch self {
        case .host: return []
        case .emulated:
            let leaf1ECX: UInt32 = (1 << 13)  // CMPXCHG16B
                | (1 << 17)  // PCID
                | (1 << 23)  // POPCNT
                | (1 << 26) | (1 << 27) | (1 << 28)  // XSAVE, OSXSAVE, AVX
            let leaf7EBX: UInt32 = (1 << 7)  // SMEP
                | (1 << 10)  // INVPCID
                | (1 << 20)  // SMAP
            let leaf7ECX: UInt32 = (1 << 2) | (1 << 3) | (1 << 4)  // UMIP, PKU, OSPKE
            let extECX: UInt32 = 0
            return [
                (1, nil, 2, leaf1ECX), (7, 0, 1, leaf7EBX), (7, 0, 2, leaf7ECX), (0x8000_0001, nil, 2, extECX),
            ]
        }
    }

    /// Applies the template and the topology for vCPU `id` of `count`.
    public func apply(to supported: [CPUIDEntry], vcpu id: Int, of count: Int) -> [CPUIDEntry] {
        var result: [CPUIDEntry] = []
        for var e in supported {
            if self == .emulated && e.function == 0xd { continue }  // no XSAVE state components
            for h in hidden where h.leaf == e.function && (h.subleaf == nil || h.subleaf == e.index) {
                switch h.register {
                case 0: e.eax &= ~h.mask
                case 1: e.ebx &= ~h.mask
                case 2: e.ecx &= ~h.mask
                default: e.edx &= ~h.mask
                }
            }
            switch e.function {
            case 1:
                e.ecx |= 1 << 31  // running under a hypervisor
                // APIC ID, logical processor count, CLFLUSH size 8 (64 bytes).
                e.ebx = (UInt32(id) << 24) | (UInt32(count) << 16) | (8 << 8) | (e.ebx & 0xff)
                if count > 1 { e.edx |= 1 << 28 } else { e.edx &= ~(1 << 28) }  // HTT
            case 0xb, 0x1f:
                e.edx = UInt32(id)  // x2APIC ID
            case 4:
                e.eax = (e.eax & 0x3fff) | (UInt32(max(0, count - 1)) << 26)
            default:
                break
            }
            result.append(e)
        }
        return result
    }
}
