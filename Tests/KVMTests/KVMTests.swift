import CKVM
import Glibc
import KVM
import Testing

@Test func kvmReportsAPIVersionAndCapabilities() throws {
    let kvm = try Kvm()
    #expect(kvm.checkExtension(KVM_CAP_USER_MEMORY) > 0)
    #expect(kvm.recommendedVcpus >= 1)
    #expect(try kvm.vcpuMmapSize() >= 4096)
    let cpuid = try kvm.supportedCPUID()
    #expect(cpuid.contains { $0.function == 0 })
    #expect(cpuid.contains { $0.function == 1 })
}

@Test func openingAMissingDeviceNamesThePath() {
    #expect(throws: KVMError.openDevice(path: "/nonexistent/kvm", .noEntry)) { try Kvm(path: "/nonexistent/kvm") }
}

@Test func portOutThenInThenOutThenHlt() throws {
    let guest = try TinyGuest(code: [
        0xba, 0xf8, 0x03,  // mov dx, 0x3f8
        0xb0, 0x41,        // mov al, 'A'
        0xee,              // out dx, al        -> ioOut 0x3f8 [0x41]
        0xec,              // in al, dx         -> ioIn 0x3f8, we answer 0x42
        0x04, 0x01,        // add al, 1
        0xee,              // out dx, al        -> ioOut 0x3f8 [0x43]
        0xf4,              // hlt               -> hlt (no irqchip)
    ])
    #expect(try guest.next() == .ioOut(port: 0x3f8, size: 1, data: [0x41]))
    #expect(try guest.next() == .ioIn(port: 0x3f8, size: 1, count: 1))
    guest.vcpu.completeRead([0x42])
    #expect(try guest.next() == .ioOut(port: 0x3f8, size: 1, data: [0x43]))
    #expect(try guest.next() == .hlt)
}

@Test func sixteenBitPortAccessCarriesTwoBytes() throws {
    let guest = try TinyGuest(code: [
        0xba, 0x10, 0x00,  // mov dx, 0x10
        0xb8, 0x34, 0x12,  // mov ax, 0x1234
        0xef,              // out dx, ax        -> ioOut 0x10 [0x34, 0x12]
        0xf4,              // hlt
    ])
    #expect(try guest.next() == .ioOut(port: 0x10, size: 2, data: [0x34, 0x12]))
    #expect(try guest.next() == .hlt)
}

@Test func mmioWriteThenReadOutsideRAM() throws {
    let guest = try TinyGuest(code: [
        0xb8, 0x00, 0x10,              // mov ax, 0x1000
        0x8e, 0xd8,                    // mov ds, ax        (ds base 0x10000: just past RAM)
        0xc6, 0x06, 0x00, 0x00, 0x5a,  // mov byte [0x0000], 0x5a   -> mmioWrite 0x10000 [0x5a]
        0xa0, 0x01, 0x00,              // mov al, [0x0001]          -> mmioRead 0x10001, we answer 0x77
        0xe6, 0x10,                    // out 0x10, al              -> ioOut 0x10 [0x77]
        0xf4,                          // hlt
    ])
    #expect(try guest.next() == .mmioWrite(address: 0x10000, data: [0x5a]))
    #expect(try guest.next() == .mmioRead(address: 0x10001, size: 1))
    guest.vcpu.completeRead([0x77])
    #expect(try guest.next() == .ioOut(port: 0x10, size: 1, data: [0x77]))
    #expect(try guest.next() == .hlt)
}

@Test func tripleFaultIsAShutdownExit() throws {
    // 32-bit protected mode (real mode on this host ignores the IDT limit), IDT limit 0.
    let guest = try TinyGuest(code: [
        0x0f, 0x0b,  // ud2: #UD, the IDT has no entry: #GP, double fault, triple fault -> shutdown
        0xf4,        // hlt (never reached)
    ])
    try guest.enterProtectedMode(idtLimit: 0)
    #expect(try guest.next() == .shutdown)
}

@Test func immediateExitReturnsInterruptedWithoutRunning() throws {
    let guest = try TinyGuest(code: [0xe6, 0x10, 0xf4])  // out 0x10, al; hlt
    guest.vcpu.requestImmediateExit()
    #expect(try guest.vcpu.runOnce() == .interrupted)
    guest.vcpu.requestImmediateExit(false)
    if case .ioOut(let port, _, _) = try guest.next() { #expect(port == 0x10) } else { Issue.record("expected ioOut") }
}

@Test func int3ReachesTheGuestHandlerDirectlyOrThroughInjection() throws {
    let guest = try TinyGuest(code: [
        0xb0, 0x42,  // 0x1000: mov al, 0x42
        0xcc,        // 0x1002: int3 -> #BP handler at 0x2000
        0xf4,        // 0x1003: hlt (not reached)
    ])
    // #BP handler at 0x2000: pops the return EIP and reports its low byte.
    let handler: [UInt8] = [
        0x58,        // pop eax        (return address: 0x1003)
        0xe6, 0x21,  // out 0x21, al   -> [0x03]
        0xf4,        // hlt
    ]
    (guest.memory + 0x2000).copyMemory(from: handler, byteCount: handler.count)
    // GDT at 0x500: null, flat 32-bit code (0x08), flat data (0x10).
    let gdt: [UInt64] = [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff]
    (guest.memory + 0x500).copyMemory(from: gdt, byteCount: 24)
    // IDT at 0x600: vector 3 is a 32-bit interrupt gate to 0x08:0x2000.
    let gate: UInt64 = 0x2000 | (0x08 << 16) | (0x8e00 << 32)
    (guest.memory + 0x600 + 3 * 8).storeBytes(of: gate, as: UInt64.self)
    try guest.enterProtectedMode(idtLimit: 4 * 8 - 1)
    var sregs = try guest.vcpu.specialRegisters()
    sregs.gdt.base = 0x500
    sregs.gdt.limit = 23
    sregs.idt.base = 0x600
    sregs.ss.selector = 0x10
    sregs.ss.db = 1
    sregs.ss.g = 1
    sregs.ss.limit = 0xffff_ffff
    try guest.vcpu.setSpecialRegisters(sregs)
    var regs = try guest.vcpu.registers()
    regs.rsp = 0x8000
    try guest.vcpu.setRegisters(regs)

    var exit = try guest.next()
    if case .internalError(1, let instruction) = exit {
        // This host's KVM emulates the guest and cannot deliver INT3 itself: the VMM injects #BP.
        #expect(instruction.first == 0xcc)
        try guest.vcpu.injectException(vector: 3, instructionLength: 1)
        exit = try guest.next()
    }
    #expect(exit == .ioOut(port: 0x21, size: 1, data: [0x03]))
    #expect(try guest.next() == .hlt)
}
