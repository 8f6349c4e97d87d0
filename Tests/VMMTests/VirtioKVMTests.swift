import Devices
import Glibc
import GuestMemory
import KVM
import Synchronization
import Testing
import VirtIO
import VirtIOTestSupport
@testable import VMM

/// Real KVM: a tiny real-mode guest kicks a virtio-rng device through QueueNotify. KVM turns the
/// store into an ioeventfd signal (no exit to us), the device thread fills the buffer and raises
/// GSI 5 through the irqfd, and the guest's interrupt handler resets the VM: so the interrupt
/// reached the guest.
@Suite(.serialized) struct VirtioKVMTests {
    static let handler: UInt16 = 0x1032

    /// Real-mode code at 0x1000. ES has base 0xd0000000 (set by the test), the first virtio slot.
    static let code: [UInt8] = [
        0xfa,                                // 0x00 cli
        0xbc, 0x00, 0x80,                    // 0x01 mov sp, 0x8000
        0xc7, 0x06, 0x94, 0x00, 0x32, 0x10,  // 0x04 mov word [0x25*4], handler (IVT vector 0x25)
        0xc7, 0x06, 0x96, 0x00, 0x00, 0x00,  // 0x0a mov word [0x25*4+2], 0
        0xb0, 0x11, 0xe6, 0x20,              // 0x10 PIC ICW1: edge, cascade, ICW4
        0xb0, 0x20, 0xe6, 0x21,              // 0x14 ICW2: vectors 0x20-0x27
        0xb0, 0x04, 0xe6, 0x21,              // 0x18 ICW3: slave on IRQ2
        0xb0, 0x01, 0xe6, 0x21,              // 0x1c ICW4: 8086 mode
        0xb0, 0xdf, 0xe6, 0x21,              // 0x20 OCW1: only IRQ5 unmasked
        0x26, 0x66, 0xc7, 0x06, 0x50, 0x00,  // 0x24 mov dword es:[0x50], 0  (QueueNotify = queue 0)
        0x00, 0x00, 0x00, 0x00,
        0xfb,                                // 0x2e sti
        0xf4,                                // 0x2f hlt
        0xeb, 0xfd,                          // 0x30 jmp 0x2f
        0xba, 0xf8, 0x03,                    // 0x32 handler: mov dx, 0x3f8
        0xb0, 0x49,                          // 0x35 mov al, 'I'
        0xee,                                // 0x37 out dx, al   (serial: "I" = the interrupt ran)
        0xb0, 0xfe, 0xe6, 0x64,              // 0x38 mov al, 0xfe; out 0x64, al (reset)
        0xeb, 0xfe,                          // 0x3c jmp $
    ]

    @Test(.timeLimit(.minutes(2)))
    func queueNotifyWakesTheDeviceThreadAndTheIrqfdInterruptReachesTheGuest() throws {
        let output = Capture()
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: 1 << 20, payload: .realMode(code: Self.code, address: 0x1000),
            consoleOutput: { output.append($0) }, virtioDevices: [.rng()]))
        let slot = try #require(vm.virtioSlots.first)
        #expect(slot.base == 0xd000_0000 && slot.irq == 5)
        // The driver's probe, done by the host on the guest's behalf (the guest has no room for it).
        let queue = try FakeVirtqueueDriver(memory: vm.memory, size: 8, base: GuestAddress(0x20000))
        MmioBusDriver(slot: slot).initialise(queues: [queue])
        #expect(slot.status.contains(.driverOK))
        let chain = try queue.add([.writable(32)])
        var sregs = try vm.vcpus[0].specialRegisters()
        sregs.es.base = 0xd000_0000
        try vm.vcpus[0].setSpecialRegisters(sregs)

        try vm.start()
        let watchdog = Deadline(seconds: 60) { vm.stop(.stopRequested) }
        let reason = vm.wait()
        watchdog.cancel()
        #expect(reason == .reset, "the guest's IRQ5 handler resets the VM; \(reason) means no interrupt arrived")
        #expect(output.value == Array("I".utf8), "the IRQ5 handler ran (not a triple fault)")
        #expect(slot.queueRunCount == 1, "the kick reached the device thread")
        #expect(slot.trappedKickCount == 0, "the kick went through the ioeventfd, not a VM exit")
        #expect(try queue.usedIndex() == 1)
        #expect(try queue.written(chain, count: 32) != [UInt8](repeating: 0, count: 32))
    }

    @Test(.timeLimit(.minutes(2)))
    func pauseParksTheVcpusAndResumeLetsThemRun() throws {
        // Spins writing the serial port; while paused nothing may be written.
        let output = Capture()
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: 1 << 20,
            payload: .realMode(code: [
                0xba, 0xf8, 0x03,  // mov dx, 0x3f8
                0xb0, 0x2e,        // mov al, '.'
                0xee,              // loop: out dx, al
                0xeb, 0xfd,        // jmp loop
            ], address: 0x1000),
            consoleOutput: { output.append($0) }))
        try vm.start()
        while output.value.count < 10 { usleep(1000) }
        try vm.pause()
        #expect(vm.isPaused)
        #expect(throws: VMMError.self) { try vm.pause() }
        let frozen = output.value.count
        usleep(200_000)
        #expect(output.value.count == frozen, "a paused vCPU ran")
        try vm.resume()
        while output.value.count < frozen + 10 { usleep(1000) }
        vm.stop()
        #expect(vm.wait() == .stopRequested)
        #expect(throws: VMMError.self) { try vm.resume() }
    }
}

/// Calls `body` after `seconds` unless cancelled.
final class Deadline: Sendable {
    private let cancelled = Atomic<Bool>(false)

    init(seconds: Int, _ body: @escaping @Sendable () -> Void) {
        _ = Thread { [self] in
            for _ in 0..<(seconds * 100) {
                if cancelled.load(ordering: .acquiring) { return }
                usleep(10_000)
            }
            body()
        }
    }

    func cancel() { cancelled.store(true, ordering: .releasing) }
}
