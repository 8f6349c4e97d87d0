import KVM

/// Which CPU features the guest sees: KVM_GET_SUPPORTED_CPUID filtered through a template,
/// then per-vCPU topology (as Firecracker's CPU templates do).
public enum CPUTemplate: String, Sendable, CaseIterable {
    /// Everything KVM supports: for hosts where guest code runs natively (VT-x/AMD-V).
    case host
    /// For hosts whose KVM runs guest kernel code in an instruction emulator (measured here:
    /// docs/vmm.md). Hides what that emulator fails on: CMPXCHG16B, POPCNT, XSAVE and
    /// the AVX family that depends on it, SMEP/SMAP (CLAC/STAC), and PCID/INVPCID, RDRAND/RDSEED.
    case emulated

    /// Linux feature numbers that must be cleared with `clearcpuid=` when they leak through
    /// KVM_SET_CPUID2 (CPUIDProbe): the instructions this host's emulator fails on or that the
    /// kernel would enable. Other leaks (RDRAND, AES, BMI...) work under emulation and are left
    /// alone; this set is the one that reached "Run /init" (docs/vmm.md).
    public var mustClearWhenLeaking: Set<Int> {
        switch self {
        case .host: []
        case .emulated: [141, 145, 151, 154, 155, 156, 295, 298, 308, 514]
        }
    }

    /// The CPUID bits this template clears (register: 0 eax, 1 ebx, 2 ecx, 3 edx), which the CPUID
    /// probe checks the guest really no longer sees.
    public var hidden: [(leaf: UInt32, subleaf: UInt32?, register: Int, mask: UInt32)] {
        switch self {
        case .host: return []
        case .emulated:
            let leaf1ECX: UInt32 = (1 << 13)  // CMPXCHG16B
                | (1 << 17)  // PCID
                | (1 << 23)  // POPCNT
                | (1 << 25)  // AES
                | (1 << 26) | (1 << 27)  // XSAVE, OSXSAVE
                | (1 << 28) | (1 << 29) | (1 << 30)  // AVX, F16C, RDRAND
                | (1 << 12)  // FMA
                | (1 << 1)  // PCLMULQDQ
                | (1 << 22)  // MOVBE
            let leaf7EBX: UInt32 = (1 << 5)  // AVX2
                | (1 << 7)  // SMEP
                | (1 << 10)  // INVPCID
                | (1 << 18)  // RDSEED
                | (1 << 20)  // SMAP
                | (1 << 3) | (1 << 8)  // BMI1, BMI2
                | (1 << 16) | (1 << 17) | (1 << 28) | (1 << 30) | (1 << 31)  // AVX-512 family
            let leaf7ECX: UInt32 = (1 << 2) | (1 << 3) | (1 << 4)  // UMIP, PKU, OSPKE
            let extECX: UInt32 = (1 << 5)  // LZCNT/ABM
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
                // TSC-deadline timer: KVM's in-kernel LAPIC emulates it (as Firecracker and QEMU
                // announce it). Without it Linux calibrates the LAPIC timer against the PIT,
                // spinning about 100 ms of guest time on `pause` until 25 PIT ticks arrive; inside
                // the nested KVM host that spin could wait forever (docs/nested-kvm.md, "Hangs").
                e.ecx |= 1 << 24
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
