import Devices
import KVM
import Testing
@testable import VMM

@Test func emulatedTemplateClearsBitsAndSetsTopology() {
    let supported = [
        CPUIDEntry(function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0xffff_ffff, edx: 0),
        CPUIDEntry(function: 7, index: 0, flags: 1, eax: 0, ebx: 0xffff_ffff, ecx: 0xffff_ffff, edx: 0),
        CPUIDEntry(function: 0xd, index: 0, flags: 1, eax: 7, ebx: 0, ecx: 0, edx: 0),
        CPUIDEntry(function: 0xb, index: 0, flags: 1, eax: 0, ebx: 0, ecx: 0, edx: 0),
    ]
    let out = CPUTemplate.emulated.apply(to: supported, vcpu: 1, of: 2)
    #expect(out.count == 3)  // leaf 0xd dropped
    #expect(out[0].ecx & (1 << 23) == 0)
    #expect(out[0].ebx >> 24 == 1)  // APIC ID
    #expect((out[0].ebx >> 16) & 0xff == 2)
    #expect(out[1].ebx & (1 << 20) == 0 && out[1].ebx & (1 << 7) == 0)  // SMAP, SMEP
    #expect(out[2].edx == 1)  // x2APIC ID
    let host = CPUTemplate.host.apply(to: supported, vcpu: 0, of: 1)
    #expect(host[0].ecx & (1 << 23) != 0)
    // KVM_GET_SUPPORTED_CPUID never reports the TSC-deadline timer; both templates announce it.
    let bare = [CPUIDEntry(function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0)]
    #expect(CPUTemplate.host.apply(to: bare, vcpu: 0, of: 1)[0].ecx & (1 << 24) != 0)
    #expect(CPUTemplate.emulated.apply(to: bare, vcpu: 0, of: 1)[0].ecx & (1 << 24) != 0)
    #expect(host.count == 4)
}
