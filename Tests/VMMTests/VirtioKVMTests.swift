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
        MmioDriver(slot: slot).initialise(queues: [queue])
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
        // The device thread counts the run after it published the used index and interrupted.
        #expect(waitUntil { slot.queueRunCount == 1 }, "the kick reached the device thread")
        #expect(slot.trappedKickCount == 0, "the kick went through the ioeventfd, not a VM exit")
        #expect(try queue.usedIndex() == 1)
        #expect(try queue.written(chain, count: 32) != [UInt8](repeating: 0, count: 32))
    }

    /// Like `code`, but after setting up the PIC it prints '.' and waits for a byte at 0x3000
    /// (interrupts still off) before it kicks: a VM saved there, restored, serves the kick.
    static let handlerAfterWait: UInt16 = 0x103f
    static let waitThenKick: [UInt8] = Array(code[0..<0x24]) + [
        0xba, 0xf8, 0x03,                    // 0x24 mov dx, 0x3f8
        0xb0, 0x2e,                          // 0x27 mov al, '.'
        0xee,                                // 0x29 out dx, al
        0x80, 0x3e, 0x00, 0x30, 0x00,        // 0x2a wait: cmp byte [0x3000], 0
        0x74, 0xf9,                          // 0x2f je wait
        0x26, 0x66, 0xc7, 0x06, 0x50, 0x00,  // 0x31 mov dword es:[0x50], 0  (QueueNotify = queue 0)
        0x00, 0x00, 0x00, 0x00,
        0xfb,                                // 0x3b sti
        0xf4,                                // 0x3c hlt
        0xeb, 0xfd,                          // 0x3d jmp 0x3c
    ] + Array(code[0x32...])                 // 0x3f handler: print 'I', reset

    @Test(.timeLimit(.minutes(2)))
    func aSavedVirtioDeviceServesTheRestoredGuestAndItsInterruptArrives() throws {
        var program = Self.waitThenKick
        program[8] = UInt8(Self.handlerAfterWait & 0xff)
        program[9] = UInt8(Self.handlerAfterWait >> 8)
        let output = Capture()
        let original = try VirtualMachine(config: VMConfig(
            memorySize: 1 << 20, payload: .realMode(code: program, address: 0x1000),
            consoleOutput: { output.append($0) }, virtioDevices: [.rng()]))
        let queue = try FakeVirtqueueDriver(memory: original.memory, size: 8, base: GuestAddress(0x20000))
        MmioDriver(slot: original.virtioSlots[0]).initialise(queues: [queue])
        var sregs = try original.vcpus[0].specialRegisters()
        sregs.es.base = 0xd000_0000
        try original.vcpus[0].setSpecialRegisters(sregs)
        try original.start()
        #expect(VMSnapshotTests.eventually { output.value == Array(".".utf8) })
        try original.pause()
        // A request the guest made available just before the save; nobody kicked for it yet.
        let chain = try queue.add([.writable(32)])
        let path = VMSnapshotTests.path()
        defer { unlink(path) }
        try original.saveSnapshot(to: path)
        original.stop()
        _ = original.wait()

        let (snapshot, file) = try SnapshotFile.read(from: path)
        let cloneOutput = Capture()
        let clone = try VirtualMachine(config: VMConfig(
            memorySize: 1 << 20, payload: .snapshot(snapshot, file: file),
            consoleOutput: { cloneOutput.append($0) }, virtioDevices: [.rng()]))
        let slot = clone.virtioSlots[0]
        #expect(slot.status.contains(.driverOK), "the driver's setup came back with the device")
        try clone.start()
        try clone.memory.write([1], at: GuestAddress(0x3000))
        let watchdog = Deadline(seconds: 60) { clone.stop(.stopRequested) }
        let reason = clone.wait()
        watchdog.cancel()
        #expect(reason == .reset, "\(reason): the restored device's interrupt did not reach the guest")
        #expect(cloneOutput.value == Array("I".utf8))
        #expect(slot.trappedKickCount == 0, "the restored VM's kicks go through its ioeventfd")
        let used: UInt16 = try clone.memory.load(at: queue.usedRing.adding(2))
        #expect(used == 1)
        let savedUsed: UInt16 = try original.memory.load(at: queue.usedRing.adding(2))
        #expect(savedUsed == 0, "the original never served it")
        let bytes = try clone.memory.read(count: 32, at: chain.writable[0].address)
        #expect(bytes != [UInt8](repeating: 0, count: 32), "the restored rng filled the guest's buffer")

        // The configuration must name the same devices, in the same order.
        #expect(throws: VMMError.snapshot("it has 1 virtio devices, the configuration 0")) {
            _ = try VirtualMachine(config: VMConfig(memorySize: 1 << 20, payload: .snapshot(snapshot, file: file)))
        }
        #expect(throws: VMMError.self) {
            _ = try VirtualMachine(config: VMConfig(
                memorySize: 1 << 20, payload: .snapshot(snapshot, file: file),
                virtioDevices: [.balloon()]))
        }
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
