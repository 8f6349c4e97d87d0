// The 8250 under a guest that loops bytes back forever: its receive buffer stays a 16550's FIFO.

import Testing
@testable import Devices

@Suite struct Serial8250Tests {
    let serial = Serial8250(output: { _ in }, interrupt: {})

    func write(_ offset: UInt64, _ value: UInt8) { _ = serial.write(offset: offset, data: [value]) }
    func read(_ offset: UInt64) -> UInt8 { serial.read(offset: offset, size: 1)[0] }
    var dataReady: Bool { read(5) & 0x01 != 0 }

    @Test func loopbackKeepsSixteenBytesAndDropsTheRest() {
        write(4, 0x10)  // MCR: loopback
        for i in 0..<100 { write(0, UInt8(i)) }
        var received: [UInt8] = []
        while dataReady { received.append(read(0)) }
        #expect(received == Array(0..<16))
    }

    @Test func loopbackTrafficDoesNotGrowTheBuffer() {
        write(4, 0x10)
        let before = serial.inputStorageSize
        for i in 0..<200_000 {
            write(0, UInt8(truncatingIfNeeded: i))
            #expect(read(0) == UInt8(truncatingIfNeeded: i))
        }
        #expect(serial.inputStorageSize == before)
        #expect(!dataReady)
    }

    @Test func hostInputStillQueuesUpToItsCapacityInOrder() {
        serial.enqueueInput((0..<Serial8250.inputCapacity + 10).map { UInt8(truncatingIfNeeded: $0) })
        var count = 0
        while dataReady {
            #expect(read(0) == UInt8(truncatingIfNeeded: count))
            count += 1
        }
        #expect(count == Serial8250.inputCapacity)
        serial.enqueueInput([7, 8])
        #expect(read(0) == 7 && read(0) == 8 && !dataReady)
    }
}
