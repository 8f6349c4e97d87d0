import CShims
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
    let guest = try TinyGuest(code: [
        0xcc,  // int3 with an IDT of limit 0: #GP, double fault, triple fault -> shutdown
        0xf4,  // hlt (never reached)
    ])
    var sregs = try guest.vcpu.specialRegisters()
    sregs.idt.base = 0
    sregs.idt.limit = 0
    try guest.vcpu.setSpecialRegisters(sregs)
    #expect(try guest.next() == .shutdown)
}

@Test func immediateExitReturnsInterruptedWithoutRunning() throws {
    let guest = try TinyGuest(code: [0xe6, 0x10, 0xf4])  // out 0x10, al; hlt
    guest.vcpu.requestImmediateExit()
    #expect(try guest.vcpu.runOnce() == .interrupted)
    guest.vcpu.requestImmediateExit(false)
    if case .ioOut(let port, _, _) = try guest.next() { #expect(port == 0x10) } else { Issue.record("expected ioOut") }
}
