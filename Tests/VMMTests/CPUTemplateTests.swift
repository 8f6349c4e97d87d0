import Devices
import KVM
import Testing
@testable import VMM

/// Records port 0x10 writes of a tiny guest.
final class PortRecorder: BusDevice {
    let capture = Capture()
    func read(offset: UInt64, size: Int) -> [UInt8] { [0] }
    func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        capture.append(data)
        return .done
    }
}

@Test(arguments: [CPUTemplate.host, .emulated])
func guestSeesTheTemplatesCPUIDLeaf1(template: CPUTemplate) throws {
    let code: [UInt8] = [
        0x66, 0xb8, 0x01, 0x00, 0x00, 0x00,  // mov eax, 1
        0x0f, 0xa2,                          // cpuid
        0x66, 0x89, 0xc8,                    // mov eax, ecx
        0xe6, 0x10,                          // out 0x10, al       (ecx bits 0-7)
        0x88, 0xe0,                          // mov al, ah
        0xe6, 0x10,                          // out 0x10, al       (ecx bits 8-15)
        0x66, 0xc1, 0xe8, 0x10,              // shr eax, 16
        0xe6, 0x10,                          // out 0x10, al       (ecx bits 16-23)
        0x88, 0xe0,                          // mov al, ah
        0xe6, 0x10,                          // out 0x10, al       (ecx bits 24-31)
        0xb0, 0xfe, 0xe6, 0x64,              // mov al, 0xfe; out 0x64, al (reset: end)
    ]
    let vm = try VirtualMachine(config: VMConfig(
        memorySize: 1 << 20, payload: .realMode(code: code, address: 0x1000), cpuTemplate: template))
    let recorder = PortRecorder()
    try vm.pio.register(recorder, base: 0x10, length: 1)
    try vm.start()
    #expect(vm.wait() == .reset)
    let bytes = recorder.capture.value
    try #require(bytes.count == 4)
    let ecx = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    #expect(ecx & (1 << 31) != 0)  // hypervisor bit always set
    if template == .emulated {
        // KVM honours this bit on every host we know (measured here too).
        #expect(ecx & (1 << 13) == 0, "CMPXCHG16B must be hidden")
        // Whatever else the guest still sees of the hidden bits, the probe must report exactly.
        let hidden: UInt32 = template.hidden.filter { $0.leaf == 1 && $0.register == 2 }.reduce(0) { $0 | $1.mask }
        let leakedHere = (0..<32).filter { ecx & hidden & (1 << UInt32($0)) != 0 }.map { 4 * 32 + $0 }
        let reported = try CPUIDProbe.leaks(template: .emulated).filter { $0.leaf == 1 }.map(\.linuxFeature)
        #expect(reported == leakedHere)
    }
}

@Test func defaultsCarryClearCPUIDForEveryLeak() throws {
    let d = GuestDefaults(template: .emulated, clearCPUID: [151, 154])
    #expect(d.cmdline.hasSuffix("noxsave clearcpuid=151,154"))
    #expect(GuestDefaults(template: .host).cmdline == GuestDefaults.common)
}

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
    #expect(host.count == 4)
}

@Test func longModeProbeEitherRunsOrHitsAnEmulationFailure() throws {
    // Our long-mode setup (GDT, page tables, EFER, CR0/CR4) must be right for the probe to mean
    // anything: the only acceptable failure is KVM's emulator rejecting POPCNT, never a failed
    // entry, a triple fault or a wrong result.
    switch try HostProbe.probeLongModeInstructions() {
    case .native:
        #expect(try HostProbe.defaultTemplate() == .host)
    case .emulated(let why):
        #expect(why.hasPrefix("internalError(suberror: 1"), "unexpected probe exit: \(why)")
        #expect(try HostProbe.defaultTemplate() == .emulated)
    }
}
