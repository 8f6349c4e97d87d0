import Glibc
import GuestMemory
import KVM
import SystemSupport
import Testing
@testable import VMM

/// Whole VMM, real KVM: a running tiny guest paused and saved, a second VirtualMachine built from
/// the file that carries on from there while the original goes its own way.
@Suite struct VMSnapshotTests {
    /// Puts 'Z' in the UART's scratch register, prints "AB", waits for a byte at 0x3000, prints
    /// it and the scratch register, and resets.
    static let waitForByte: [UInt8] = [
        0xba, 0xff, 0x03,              // mov dx, 0x3ff   (scratch)
        0xb0, 0x5a, 0xee,              // out 'Z'
        0xba, 0xf8, 0x03,              // mov dx, 0x3f8
        0xb0, 0x41, 0xee,              // out 'A'
        0xb0, 0x42, 0xee,              // out 'B'
        0x80, 0x3e, 0x00, 0x30, 0x00,  // wait: cmp byte [0x3000], 0
        0x74, 0xf9,                    // je wait
        0xa0, 0x00, 0x30,              // mov al, [0x3000]
        0xee,                          // out dx, al
        0xba, 0xff, 0x03,              // mov dx, 0x3ff
        0xec,                          // in al, dx       (the scratch register, restored with the VM)
        0xba, 0xf8, 0x03,              // mov dx, 0x3f8
        0xee,                          // out dx, al
        0xb0, 0xfe, 0xe6, 0x64,        // out 0x64, 0xfe (i8042 reset: the VM stops)
    ]
    static let memorySize: UInt64 = 1 << 20

    static func path() -> String { "/tmp/kata-vm-snapshot-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    static func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }

    /// Builds a VM from the snapshot, runs it, gives it `byte` and returns what it printed until
    /// it reset.
    static func restore(_ snapshot: SnapshotFile, _ file: FileDescriptor, thenGive byte: Unicode.Scalar) throws -> [UInt8] {
        let output = Capture()
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: memorySize, payload: .snapshot(snapshot, file: file), consoleOutput: { output.append($0) }))
        try vm.start()
        try vm.memory.write([UInt8(ascii: byte)], at: GuestAddress(0x3000))
        #expect(vm.wait() == .reset)
        return output.value
    }

    @Test func aPausedVMIsSavedAndASecondOneCarriesOnFromTheFile() throws {
        let output = Capture()
        let original = try VirtualMachine(config: VMConfig(
            memorySize: Self.memorySize, payload: .realMode(code: Self.waitForByte, address: 0x1000),
            consoleOutput: { output.append($0) }))
        try original.start()
        #expect(Self.eventually { output.value == Array("AB".utf8) })
        #expect(throws: VMMError.invalidState(operation: "snapshot", state: "running")) {
            try original.saveSnapshot(to: "/nonexistent/never-written")
        }
        try original.pause()
        let path = Self.path()
        defer { unlink(path) }
        try original.saveSnapshot(to: path)

        let (snapshot, file) = try SnapshotFile.read(from: path)
        // A VM from the file starts where the original was: waiting.
        #expect(try Self.restore(snapshot, file, thenGive: "C") == Array("CZ".utf8))

        try original.memory.write([UInt8(ascii: "D")], at: GuestAddress(0x3000))
        try original.resume()
        #expect(original.wait() == .reset)
        #expect(output.value == Array("ABDZ".utf8))

        // A second VM from the same file starts from the same point.
        #expect(try Self.restore(snapshot, file, thenGive: "E") == Array("EZ".utf8))

        // The clones' writes stayed in the clones: the file still holds the waiting guest.
        var flag: UInt8 = 0xff
        #expect(pread(file.rawValue, &flag, 1, off_t(snapshot.regions[0].fileOffset + 0x3000)) == 1)
        #expect(flag == 0)
    }

    @Test func aSnapshotRestoresOnlyIntoTheConfigurationItWasSavedFrom() throws {
        let vm = try VirtualMachine(config: VMConfig(
            memorySize: Self.memorySize, payload: .realMode(code: Self.waitForByte, address: 0x1000)))
        let path = Self.path()
        defer { unlink(path) }
        try vm.saveSnapshot(to: path)  // not started: saved as built
        let (snapshot, file) = try SnapshotFile.read(from: path)
        #expect(throws: VMMError.snapshot("its guest RAM is not the layout of 2 MiB")) {
            _ = try VirtualMachine(config: VMConfig(memorySize: 2 << 20, payload: .snapshot(snapshot, file: file)))
        }
        var damaged = snapshot
        damaged.devices["serial"] = [1, 2, 3]
        #expect(throws: VMMError.snapshot("the serial port's state is 3 bytes, not 8")) {
            _ = try VirtualMachine(config: VMConfig(memorySize: Self.memorySize, payload: .snapshot(damaged, file: file)))
        }
        var otherCPU = snapshot
        otherCPU.devices["cpuid"]?[12] ^= 1  // a bit of the first entry's EAX (after function, index, flags)
        #expect(throws: VMMError.snapshot("this host gives its vCPUs another CPUID than the saved VM's (another CPU, KVM or CPU template)")) {
            _ = try VirtualMachine(config: VMConfig(memorySize: Self.memorySize, payload: .snapshot(otherCPU, file: file)))
        }
        #expect(throws: VMMError.snapshot("it was saved with the in-kernel irqchip")) {
            _ = try VirtualMachine(config: VMConfig(memorySize: Self.memorySize, payload: .snapshot(snapshot, file: file), irqchip: false))
        }
    }
}
