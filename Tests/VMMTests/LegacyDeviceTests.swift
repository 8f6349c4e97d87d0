import Devices
import Synchronization
import Testing

/// Collects console bytes and counts interrupts from any thread.
final class Capture: Sendable {
    let bytes = Mutex<[UInt8]>([])
    let count = Atomic<Int>(0)
    var value: [UInt8] { bytes.withLock { $0 } }
    func append(_ b: [UInt8]) { bytes.withLock { $0 += b } }
}

final class SerialHarness: Sendable {
    let output = Capture()
    let serial: Serial8250

    init() {
        let output = self.output
        serial = Serial8250(
            output: { bytes in output.append(bytes) },
            interrupt: { output.count.add(1, ordering: .relaxed) })
    }

    func readRegister(_ offset: UInt64) -> UInt8 { serial.read(offset: offset, size: 1)[0] }
    func writeRegister(_ offset: UInt64, _ value: UInt8) { _ = serial.write(offset: offset, data: [value]) }
    var interruptCount: Int { output.count.load(ordering: .relaxed) }
}

@Test func serialTransmitsBytesAndReportsEmptyTransmitter() {
    let h = SerialHarness()
    for b in Array("ok\n".utf8) { h.writeRegister(0, b) }
    #expect(h.output.value == Array("ok\n".utf8))
    #expect(h.readRegister(5) & 0x60 == 0x60)  // THRE | TEMT
    #expect(h.readRegister(5) & 0x01 == 0)  // no data
    #expect(h.interruptCount == 0)  // no interrupts enabled
}

@Test func serialTransmitEmptyInterruptFiresAndIsClearedByReadingIIR() {
    let h = SerialHarness()
    h.writeRegister(1, 0x02)  // IER: THRE
    #expect(h.interruptCount == 1)
    #expect(h.readRegister(2) & 0x0f == 0x02)  // IIR: THRE
    #expect(h.readRegister(2) & 0x0f == 0x01)  // cleared by the read
    h.writeRegister(0, 0x41)
    #expect(h.interruptCount == 2)
    #expect(h.readRegister(2) & 0x0f == 0x02)
}

@Test func serialInputIsReadInOrderWithReceiveInterrupt() {
    let h = SerialHarness()
    h.serial.enqueueInput([0x61, 0x62])
    #expect(h.interruptCount == 0)  // receive interrupt not enabled yet
    h.writeRegister(1, 0x01)
    h.serial.enqueueInput([0x63])
    #expect(h.interruptCount >= 1)
    #expect(h.readRegister(2) & 0x0f == 0x04)  // received data available
    var got: [UInt8] = []
    while h.readRegister(5) & 0x01 != 0 { got.append(h.readRegister(0)) }
    #expect(got == [0x61, 0x62, 0x63])
    #expect(h.readRegister(2) & 0x0f == 0x01)
}

@Test func serialInputIsBounded() {
    let h = SerialHarness()
    h.serial.enqueueInput([UInt8](repeating: 0x61, count: Serial8250.inputCapacity + 100))
    var n = 0
    while h.readRegister(5) & 0x01 != 0 {
        _ = h.readRegister(0)
        n += 1
    }
    #expect(n == Serial8250.inputCapacity)
}

@Test func serialDivisorLatchScratchAndLoopback() {
    let h = SerialHarness()
    h.writeRegister(3, 0x80)  // DLAB
    h.writeRegister(0, 0x01)
    h.writeRegister(1, 0x00)
    #expect(h.readRegister(0) == 0x01)
    h.writeRegister(3, 0x03)
    h.writeRegister(7, 0x5a)
    #expect(h.readRegister(7) == 0x5a)
    h.writeRegister(4, 0x10 | 0x0f)  // loopback, all outputs set
    #expect(h.readRegister(6) == 0xf0)
    h.writeRegister(0, 0x33)
    #expect(h.output.value.isEmpty)  // looped back, not transmitted
    #expect(h.readRegister(0) == 0x33)
}

@Test func i8042ResetsOnlyOnCommandFE() {
    let kbd = I8042()
    #expect(kbd.write(offset: 4, data: [0xfe]) == .resetRequested)
    #expect(kbd.write(offset: 4, data: [0x20]) == .done)
    #expect(kbd.write(offset: 0, data: [0xfe]) == .done)
    #expect(kbd.read(offset: 4, size: 1) == [0])
}

@Test func bootTimerRecordsTheFirstMagicWriteOnly() {
    let calls = Capture()
    let timer = BootTimer(start: .now - .milliseconds(5), onRecord: { _ in calls.count.add(1, ordering: .relaxed) })
    #expect(timer.timeToInit == nil)
    _ = timer.write(offset: 0, data: [1])
    #expect(timer.timeToInit == nil)
    _ = timer.write(offset: 0, data: [123])
    let first = timer.timeToInit
    #expect(first != nil && first! >= .milliseconds(5))
    _ = timer.write(offset: 0, data: [123])
    #expect(timer.timeToInit == first)
    #expect(calls.count.load(ordering: .relaxed) == 1)
}
