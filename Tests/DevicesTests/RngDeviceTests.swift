import Devices
import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

@Suite struct RngDeviceTests {
    let memory = HeapGuestMemory(size: 0x80000)
    let interrupt = RecordingInterruptTrigger()

    func makeDevice(_ device: RngDevice, _ driver: FakeVirtqueueDriver) throws -> RngDevice {
        device.queues = [driver.makeQueue(maxSize: RngDevice.queueSize)]
        try device.activate(memory: memory, interrupt: interrupt)
        return device
    }

    @Test func fillsEveryWritableBufferAndReportsTheLength() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try makeDevice(RngDevice(entropy: { count in (0..<count).map { UInt8(truncatingIfNeeded: $0 + 1) } }), driver)
        let chain = try driver.add([.writable(5), .writable(3)])
        device.queueNotified(0)
        #expect(try driver.takeUsed() == [.init(head: UInt32(chain.head), length: 8)])
        #expect(try driver.written(chain, count: 8) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(device.bytesServed == 8)
        #expect(interrupt.usedBufferCount == 1)
    }

    @Test func servesHostEntropy() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try makeDevice(RngDevice(), driver)
        let first = try driver.add([.writable(64)])
        let second = try driver.add([.writable(64)])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [64, 64])
        let a = try driver.written(first, count: 64)
        let b = try driver.written(second, count: 64)
        #expect(a != b && a != Array(repeating: 0, count: 64))
        #expect(HostEntropy.bytes(32) != HostEntropy.bytes(32))
    }

    @Test func capsOneRequestAndIgnoresReadableBuffers() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000), dataSize: 0x30000)
        let device = try makeDevice(RngDevice(), driver)
        try driver.add([.writable(UInt32(RngDevice.maxBytesPerRequest) + 4096)])
        try driver.add([.readable([1, 2, 3])])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [UInt32(RngDevice.maxBytesPerRequest), 0])
    }

    @Test func publishesAvailEventSoTheDriverKicksAgain() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = RngDevice()
        device.queues = [driver.makeQueue(maxSize: RngDevice.queueSize, eventIndex: true)]
        try device.activate(memory: memory, interrupt: interrupt)
        try driver.add([.writable(16)])
        try driver.add([.writable(16)])
        device.queueNotified(0)
        #expect(try driver.takeUsed().map(\.length) == [16, 16])
        #expect(try driver.availableEvent() == driver.availableIndex)
    }

    @Test func brokenQueueSignalsNeedsReset() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try makeDevice(RngDevice(), driver)
        try driver.writeDescriptor(.init(address: 0x7fff0, length: 0x100, flags: DescriptorFlag.write, next: 0), at: 0)
        try driver.publish(head: 0)
        device.queueNotified(0)
        #expect(interrupt.needsResetCount == 1 && device.queues[0].isBroken)
        #expect(device.bytesServed == 0)
    }
}
