import CKVM
import Glibc
import KVM
import SystemSupport
import Testing

/// Snapshot and restore on the host's KVM with tiny guests: a VM's vCPU and in-kernel devices
/// captured mid-run, its memory written to a file, and a fresh VM built from them (memory mapped
/// private from the file, Firecracker's way) that carries on where the original was.
@Suite struct SnapshotTests {
    /// Real mode, forever: the word at 0x2000 incremented, then written to port 0x10.
    static let counterLoop: [UInt8] = [
        0xa1, 0x00, 0x20,  // mov ax, [0x2000]
        0x40,              // inc ax
        0xa3, 0x00, 0x20,  // mov [0x2000], ax
        0xe7, 0x10,        // out 0x10, ax
        0xeb, 0xf5,        // jmp back to the first instruction
    ]

    static func counterOut(_ value: UInt16) -> VcpuExit {
        .ioOut(port: 0x10, size: 2, data: [UInt8(value & 0xff), UInt8(value >> 8)])
    }

    /// A file holding `bytes`, unlinked already (only the descriptor names it).
    static func memoryFile(_ bytes: UnsafeRawBufferPointer) throws -> FileDescriptor {
        var template = Array("/tmp/kata-snapshot-test.XXXXXX".utf8CString)
        let raw = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard raw >= 0 else { throw Errno.current }
        let fd = FileDescriptor(owning: raw)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        try writeAll(fd.rawValue, Array(bytes))
        return fd
    }

    /// A VM whose RAM is `memory` (`size` bytes at guest address 0), with the real-mode
    /// helpers Intel needs and, if asked, the in-kernel irqchip and PIT.
    static func makeVM(_ kvm: Kvm, memory: UnsafeMutableRawPointer, size: Int, irqchip: Bool) throws -> VM {
        let vm = try kvm.createVM()
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: UInt64(size), hostAddress: memory)
        try vm.setIdentityMapAddress(0xfffb_c000)
        try vm.setTSSAddress(0xfffb_d000)
        if irqchip {
            try vm.createIRQChip()
            try vm.createPIT()
        }
        return vm
    }

    static func next(_ vcpu: Vcpu) throws -> VcpuExit {
        while true {
            let exit = try vcpu.runOnce()
            if exit != .interrupted { return exit }
        }
    }

    @Test func aRestoredVcpuCarriesOnFromTheSnapshotWithPrivateMemory() throws {
        let kvm = try Kvm()
        let original = try TinyGuest(code: Self.counterLoop)
        for value in 1...3 { #expect(try original.next() == Self.counterOut(UInt16(value))) }

        let state = try original.vcpu.captureState(msrIndices: try kvm.msrIndexList())
        #expect(state.localAPIC == nil)  // no irqchip in a TinyGuest
        #expect(!state.msrs.isEmpty)
        let file = try Self.memoryFile(UnsafeRawBufferPointer(start: original.memory, count: TinyGuest.memorySize))

        // The original runs on; the clone starts from the snapshot, not from where the original is.
        #expect(try original.next() == Self.counterOut(4))
        #expect(try original.next() == Self.counterOut(5))

        let size = TinyGuest.memorySize
        let mapping = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.rawValue, 0))
        #expect(mapping != MAP_FAILED)
        defer { munmap(mapping, size) }
        let clone = try Self.makeVM(kvm, memory: mapping, size: size, irqchip: false)
        let vcpu = try clone.createVcpu(id: 0)
        try vcpu.restoreState(state)
        #expect(try Self.next(vcpu) == Self.counterOut(4))
        #expect(try Self.next(vcpu) == Self.counterOut(5))
        #expect(try Self.next(vcpu) == Self.counterOut(6))
        #expect(try original.next() == Self.counterOut(6))

        // The clone's writes stayed private: the snapshot still says 3.
        var stored: UInt16 = 0
        #expect(pread(file.rawValue, &stored, 2, 0x2000) == 2)
        #expect(stored == 3)
    }

    @Test func interruptControllersPITAndClockComeBackInAFreshVM() throws {
        let kvm = try Kvm()
        let size = 0x10000
        let memory = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(memory, size) }
        (memory + 0x1000).copyMemory(from: Self.counterLoop, byteCount: Self.counterLoop.count)
        let vm = try Self.makeVM(kvm, memory: memory, size: size, irqchip: true)
        let vcpu = try vm.createVcpu(id: 0)
        var sregs = try vcpu.specialRegisters()
        sregs.cs.base = 0
        sregs.cs.selector = 0
        try vcpu.setSpecialRegisters(sregs)
        var regs = try vcpu.registers()
        regs.rip = 0x1000
        regs.rflags = 0x2  // interrupts off: the raised line stays pending
        try vcpu.setRegisters(regs)
        #expect(try Self.next(vcpu) == Self.counterOut(1))
        try vm.setIRQLine(4, high: true)  // IRQ 4 pending in the master PIC and at IOAPIC pin 4

        let vmState = try vm.captureState()
        let vcpuState = try vcpu.captureState(msrIndices: try kvm.msrIndexList())
        #expect(vmState.irqChips[0].chip.pic.irr & 0x10 != 0)

        let fresh = try Self.makeVM(kvm, memory: memory, size: size, irqchip: true)
        let restoredVcpu = try fresh.createVcpu(id: 0)
        try fresh.restoreState(vmState)
        try restoredVcpu.restoreState(vcpuState)
        let again = try fresh.captureState()
        #expect(again.irqChips[0].chip.pic.irr & 0x10 != 0)
        #expect(withUnsafeBytes(of: again.irqChips[2].chip.ioapic) { Array($0) }
            == withUnsafeBytes(of: vmState.irqChips[2].chip.ioapic) { Array($0) })
        #expect(again.pit.channels.0.mode == vmState.pit.channels.0.mode)
        #expect(again.pit.channels.0.count == vmState.pit.channels.0.count)
        // The guest's clock resumes where it was read, not at the host's time since.
        #expect(again.clock.clock >= vmState.clock.clock)
        #expect(again.clock.clock < vmState.clock.clock + 1_000_000_000)
        let restoredLAPIC = try #require(try restoredVcpu.captureState(msrIndices: []).localAPIC)
        let capturedLAPIC = try #require(vcpuState.localAPIC)
        #expect(withUnsafeBytes(of: restoredLAPIC.regs) { Array($0) } == withUnsafeBytes(of: capturedLAPIC.regs) { Array($0) })
        #expect(try Self.next(restoredVcpu) == Self.counterOut(2))
    }

    @Test func aMalformedStateIsRefusedBeforeKVMSeesIt() throws {
        let guest = try TinyGuest(code: Self.counterLoop)
        var state = try guest.vcpu.captureState(msrIndices: [])
        state.extendedState.removeLast()
        #expect(throws: KVMError.state("KVM_SET_XSAVE", .invalidArgument)) { try guest.vcpu.restoreState(state) }
        let vm = try Kvm().createVM()
        try vm.createIRQChip()
        try vm.createPIT()
        var vmState = try vm.captureState()
        vmState.irqChips.swapAt(0, 2)
        #expect(throws: KVMError.state("KVM_SET_IRQCHIP", .invalidArgument)) { try vm.restoreState(vmState) }
    }
}
