import Devices
import KVM
import Synchronization
import Testing
@testable import VMM

/// A bus device that records accesses, answers reads with a fixed pattern and can ask for a reset.
final class RecordingDevice: BusDevice {
    let writes = Mutex<[(UInt64, [UInt8])]>([])
    let reads = Mutex<[(UInt64, Int)]>([])
    let resetOnWrite: Bool

    init(resetOnWrite: Bool = false) { self.resetOnWrite = resetOnWrite }

    func read(offset: UInt64, size: Int) -> [UInt8] {
        reads.withLock { $0.append((offset, size)) }
        return (0..<size).map { UInt8(truncatingIfNeeded: Int(offset) + $0 + 0x10) }
    }

    func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        writes.withLock { $0.append((offset, data)) }
        return resetOnWrite ? .resetRequested : .done
    }
}

@Test func portWriteReachesTheDeviceAtItsOffset() throws {
    let pio = Bus()
    let device = RecordingDevice()
    try pio.register(device, base: 0x3f8, length: 8)
    #expect(handle(.ioOut(port: 0x3fb, size: 1, data: [0x80]), pio: pio, mmio: Bus()) == .resume)
    let writes = device.writes.withLock { $0 }
    #expect(writes.count == 1)
    #expect(writes.first?.0 == 3)
    #expect(writes.first?.1 == [0x80])
}

@Test func repOutsIsSplitIntoOneAccessPerElement() throws {
    let pio = Bus()
    let device = RecordingDevice()
    try pio.register(device, base: 0x10, length: 2)
    #expect(handle(.ioOut(port: 0x10, size: 2, data: [1, 2, 3, 4, 5, 6]), pio: pio, mmio: Bus()) == .resume)
    #expect(device.writes.withLock { $0.map(\.1) } == [[1, 2], [3, 4], [5, 6]])
    #expect(handle(.ioOut(port: 0x10, size: 2, data: [1, 2, 3]), pio: pio, mmio: Bus()) == .stop(.unhandledExit("ioOut(port: 16, size: 2, data: [1, 2, 3])")))
}

@Test func portReadAnswersFromDeviceOrAllOnes() throws {
    let pio = Bus()
    try pio.register(RecordingDevice(), base: 0x60, length: 5)
    #expect(handle(.ioIn(port: 0x64, size: 1, count: 1), pio: pio, mmio: Bus()) == .completeRead([0x14]))
    #expect(handle(.ioIn(port: 0x64, size: 1, count: 2), pio: pio, mmio: Bus()) == .completeRead([0x14, 0x14]))
    #expect(handle(.ioIn(port: 0x80, size: 2, count: 1), pio: pio, mmio: Bus()) == .completeRead([0xff, 0xff]))
    // An access straddling the end of the window belongs to no device.
    #expect(handle(.ioIn(port: 0x64, size: 2, count: 1), pio: pio, mmio: Bus()) == .completeRead([0xff, 0xff]))
}

@Test func mmioReadAndWriteAndUnmappedAccess() throws {
    let mmio = Bus()
    let device = RecordingDevice()
    try mmio.register(device, base: 0xd000_0000, length: 0x1000)
    #expect(handle(.mmioRead(address: 0xd000_0004, size: 4), pio: Bus(), mmio: mmio) == .completeRead([0x14, 0x15, 0x16, 0x17]))
    #expect(handle(.mmioWrite(address: 0xd000_0ffc, data: [9, 9, 9, 9]), pio: Bus(), mmio: mmio) == .resume)
    #expect(device.writes.withLock { $0.first?.0 } == 0xffc)
    #expect(handle(.mmioRead(address: 0xe000_0000, size: 8), pio: Bus(), mmio: mmio) == .completeRead([UInt8](repeating: 0xff, count: 8)))
    #expect(handle(.mmioWrite(address: 0xe000_0000, data: [1]), pio: Bus(), mmio: mmio) == .resume)
}

@Test func resetRequestsAndTerminalExitsStop() throws {
    let pio = Bus()
    try pio.register(RecordingDevice(resetOnWrite: true), base: 0x64, length: 1)
    #expect(handle(.ioOut(port: 0x64, size: 1, data: [0xfe]), pio: pio, mmio: Bus()) == .stop(.reset))
    #expect(handle(.shutdown, pio: pio, mmio: Bus()) == .stop(.tripleFault(vcpu: -1, registers: nil)))
    #expect(handle(.hlt, pio: pio, mmio: Bus()) == .stop(.halted))
    #expect(handle(.systemEvent(type: 1), pio: pio, mmio: Bus()) == .stop(.systemEvent(1)))
    #expect(handle(.internalError(suberror: 1, instruction: [0x0f, 0x01, 0xca]), pio: pio, mmio: Bus()) == .stop(.internalError(1, [0x0f, 0x01, 0xca])))
    #expect(handle(.internalError(suberror: 1, instruction: [0xcc, 0x90]), pio: pio, mmio: Bus()) == .injectException(vector: 3, instructionLength: 1))
    #expect(handle(.failEntry(reason: 0x21), pio: pio, mmio: Bus()) == .stop(.failEntry(0x21)))
    #expect(handle(.unknown(reason: 99), pio: pio, mmio: Bus()) == .stop(.unhandledExit("reason 99")))
    #expect(handle(.interrupted, pio: pio, mmio: Bus()) == .resume)
}

@Test func busRefusesOverlapsAndEmptyWindows() throws {
    let bus = Bus()
    try bus.register(RecordingDevice(), base: 0x100, length: 0x10)
    #expect(throws: BusError.overlap(base: 0x10f, length: 1)) { try bus.register(RecordingDevice(), base: 0x10f, length: 1) }
    #expect(throws: BusError.overlap(base: 0xf8, length: 0x10)) { try bus.register(RecordingDevice(), base: 0xf8, length: 0x10) }
    #expect(throws: BusError.emptyRange(base: 0x200)) { try bus.register(RecordingDevice(), base: 0x200, length: 0) }
    #expect(throws: BusError.self) { try bus.register(RecordingDevice(), base: .max, length: 2) }
    try bus.register(RecordingDevice(), base: 0x110, length: 1)
}
