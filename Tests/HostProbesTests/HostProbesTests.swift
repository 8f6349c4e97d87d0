import Devices
import KVM
import Synchronization
import Testing
@testable import HostProbes
@testable import VMM

/// Records port 0x10 writes of a tiny guest.
final class PortRecorder: BusDevice {
    private let bytes = Mutex<[UInt8]>([])
    var value: [UInt8] { bytes.withLock { $0 } }
    func read(offset: UInt64, size: Int) -> [UInt8] { [0] }
    func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        bytes.withLock { $0 += data }
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
    let bytes = recorder.value
    try #require(bytes.count == 4)
    let ecx = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    #expect(ecx & (1 << 31) != 0)  // hypervisor bit always set
    #expect(ecx & (1 << 24) != 0)  // TSC-deadline timer announced: no LAPIC calibration loop
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

@Suite struct KVMUserspaceProbeTests {
    @Test func verdictNeedsRing0InTheHandlerAndRing3AfterSysret() {
        #expect(KVMUserspaceProbe.verdict([0x08, 0x23]) == .works)
        // What this project's emulated KVM does: the handler runs with a ring-3 CS.
        guard case .fails(let why) = KVMUserspaceProbe.verdict([0x23, 0x23]) else {
            Issue.record("a ring-3 handler passed")
            return
        }
        #expect(why.contains("ring 3"))
        #expect(KVMUserspaceProbe.verdict([0x08, 0x08]) != .works)
        #expect(KVMUserspaceProbe.verdict([0x08]) != .works)
    }
}
