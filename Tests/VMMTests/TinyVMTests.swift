import Boot
import Glibc
import Devices
import KVM
import Synchronization
import Testing
@testable import VMM

/// Real KVM, whole VMM: tiny real-mode guests on vCPU threads with the in-kernel irqchip.
struct TinyVMTests {
    func makeVM(_ code: [UInt8], output: Capture = Capture()) throws -> VirtualMachine {
        try VirtualMachine(config: VMConfig(
            memorySize: 1 << 20, payload: .realMode(code: code, address: 0x1000),
            consoleOutput: { bytes in output.append(bytes) }))
    }

    @Test func serialOutputThenI8042ResetStopsTheVM() throws {
        let output = Capture()
        let vm = try makeVM([
            0xba, 0xf8, 0x03,  // mov dx, 0x3f8
            0xb0, 0x48,        // mov al, 'H'
            0xee,              // out dx, al
            0xb0, 0x69,        // mov al, 'i'
            0xee,              // out dx, al
            0xb0, 0xfe,        // mov al, 0xfe
            0xe6, 0x64,        // out 0x64, al   (i8042: pulse reset)
            0xeb, 0xfe,        // jmp $          (never reached)
        ], output: output)
        try vm.start()
        #expect(vm.wait() == .reset)
        #expect(output.value == Array("Hi".utf8))
    }

    @Test func serialInputIsEchoedByTheGuest() throws {
        let output = Capture()
        let vm = try makeVM([
            0xba, 0xfd, 0x03,  // mov dx, 0x3fd   (LSR)
            0xec,              // wait: in al, dx
            0xa8, 0x01,        // test al, 1      (data ready?)
            0x74, 0xfb,        // jz wait
            0xba, 0xf8, 0x03,  // mov dx, 0x3f8
            0xec,              // in al, dx       (RBR)
            0xee,              // out dx, al      (THR: echo)
            0xb0, 0xfe,        // mov al, 0xfe
            0xe6, 0x64,        // out 0x64, al    (reset)
        ], output: output)
        try vm.start()
        vm.serial.enqueueInput([0x78])
        #expect(vm.wait() == .reset)
        #expect(output.value == [0x78])
    }

    @Test func stopFromAnotherThreadEndsASpinningGuest() throws {
        let vm = try makeVM([0xeb, 0xfe])  // jmp $
        try vm.start()
        let stopper = Thread { vm.stop() }
        _ = stopper
        #expect(vm.wait() == .stopRequested)
        #expect(throws: VMMError.alreadyStarted) { try vm.start() }
    }

    @Test func tripleFaultStopsTheVMWithTheVcpuRegisters() throws {
        let vm = try makeVM([
            0xfa,                          // cli
            0x0f, 0x01, 0x1e, 0x11, 0x10,  // lidt [0x1011]    (limit 0)
            0x0f, 0x20, 0xc0,              // mov eax, cr0
            0x0c, 0x01,                    // or al, 1
            0x0f, 0x22, 0xc0,              // mov cr0, eax     (protected mode honours the IDT limit)
            0x0f, 0x0b,                    // ud2: no IDT entry -> #GP -> #DF -> triple fault
            0xf4,                          // hlt (never reached)
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 0x1011: IDTR, limit 0, base 0
        ])
        try vm.start()
        let reason = vm.wait()
        guard case .tripleFault(let vcpu, let registers?) = reason else {
            Issue.record("expected a triple fault with registers, got \(reason)")
            return
        }
        #expect(vcpu == 0)
        #expect(registers.contains("rip=0x") && registers.contains("cr0="), "\(registers)")
    }

    @Test(.timeLimit(.minutes(1))) func aKernelPanicOnTheConsoleStopsTheVMAsAPanic() throws {
        let message = Array("Kernel panic - not syncing: VFS: Unable to mount root fs\nmore\n".utf8)
        let vm = try makeVM([
            0xbe, 0x10, 0x10,  // mov si, 0x1010 (the message)
            0xba, 0xf8, 0x03,  // mov dx, 0x3f8
            0xac,              // next: lodsb
            0x84, 0xc0,        // test al, al
            0x74, 0x03,        // jz done
            0xee,              // out dx, al
            0xeb, 0xf8,        // jmp next
            0xeb, 0xfe,        // done: jmp $ (a panicked kernel spins; the VMM must stop it)
        ] + message + [0])
        try vm.start()
        #expect(vm.wait() == .guestPanic("VFS: Unable to mount root fs"))
    }

    @Test func bootTimerIsWiredAtItsLayoutAddress() throws {
        let vm = try makeVM([0xf4])
        #expect(handle(.mmioWrite(address: Layout.bootTimerMMIO, data: [123]), pio: vm.pio, mmio: vm.mmio) == .resume)
        #expect(vm.bootTimer.timeToInit != nil)
    }

    @Test func invalidVcpuCountAndTinyMemoryAreRefused() throws {
        #expect(throws: VMMError.self) {
            try VirtualMachine(config: VMConfig(memorySize: 64 << 20, vcpus: 0, payload: .realMode(code: [0xf4], address: 0x1000)))
        }
        #expect(throws: VMMError.boot(.memoryTooSmall(size: 1 << 20, minimum: 16 << 20))) {
            try VirtualMachine(config: VMConfig(
                memorySize: 1 << 20, payload: .linux(kernel: [], initrd: nil, cmdline: Cmdline())))
        }
    }

    /// KVM's recommended count (the host's CPUs) is advice: a 2-vCPU guest on a 1-CPU host
    /// (the nested KVM host) runs overcommitted. Only KVM_CAP_MAX_VCPUS is a limit.
    @Test func moreVcpusThanHostCPUsAreAllowedUpToKVMsMaximum() throws {
        let kvm = try Kvm()
        #expect(kvm.maxVcpus >= kvm.recommendedVcpus)
        guard kvm.maxVcpus > kvm.recommendedVcpus else { return }
        let vcpus = kvm.recommendedVcpus + 1
        #expect(throws: Never.self) {
            _ = try VirtualMachine(config: VMConfig(
                memorySize: 1 << 20, vcpus: vcpus, payload: .realMode(code: [0xf4], address: 0x1000)), kvm: kvm)
        }
        #expect(throws: VMMError.invalidVcpuCount(requested: kvm.maxVcpus + 1, maximum: kvm.maxVcpus)) {
            try VirtualMachine(config: VMConfig(
                memorySize: 1 << 20, vcpus: kvm.maxVcpus + 1, payload: .realMode(code: [0xf4], address: 0x1000)), kvm: kvm)
        }
    }
}

/// A tiny one-shot thread helper for tests: runs `body` after a short delay.
final class Thread: Sendable {
    init(_ body: @escaping @Sendable () -> Void) {
        let t = VMMThread()
        try? t.start(name: "test-stopper") {
            var ts = timespec(tv_sec: 0, tv_nsec: 100_000_000)
            nanosleep(&ts, nil)
            body()
        }
    }
}
