// virtio-balloon with free page reporting: reported whole pages of guest RAM are discarded (they
// read as zeros afterwards); every other range a guest can send is skipped without touching
// memory; the queue count follows the negotiated features.

import Devices
import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

@Suite struct BalloonDeviceTests {
    let memory = HeapGuestMemory(size: 0x80000)
    let interrupt = RecordingInterruptTrigger()
    static let page = Int(BalloonDevice.pageSize)

    /// A device that negotiated free page reporting, its reporting queue driven by `driver`.
    func reportingDevice(_ driver: FakeVirtqueueDriver) throws -> BalloonDevice {
        let device = BalloonDevice()
        device.ackedFeatures = VirtioFeature.version1 | BalloonDevice.freePageReporting
        #expect(device.queues.count == 3)
        device.queues[BalloonDevice.reportingQueue] = driver.makeQueue(maxSize: BalloonDevice.queueSize)
        try device.activate(memory: memory, interrupt: interrupt)
        return device
    }

    /// Publishes one chain of device-writable descriptors over the given guest ranges.
    func report(_ driver: FakeVirtqueueDriver, _ ranges: [(UInt64, UInt32)], flags: UInt16 = DescriptorFlag.write) throws {
        for (i, range) in ranges.enumerated() {
            let last = i == ranges.count - 1
            try driver.writeDescriptor(
                .init(address: range.0, length: range.1, flags: flags | (last ? 0 : DescriptorFlag.next), next: last ? 0 : UInt16(i + 1)),
                at: UInt16(i))
        }
        try driver.publish(head: 0)
    }

    func fill(_ address: UInt64, pages: Int) throws {
        try memory.write([UInt8](repeating: 0xa5, count: pages * Self.page), at: GuestAddress(address))
    }

    @Test func reportedPagesAreDiscardedAndTheChainReturned() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try reportingDevice(driver)
        try fill(0x40000, pages: 4)
        try fill(0x60000, pages: 2)
        try report(driver, [(0x40000, UInt32(2 * Self.page)), (0x60000, UInt32(Self.page))])
        device.queueNotified(BalloonDevice.reportingQueue)
        #expect(try driver.takeUsed() == [.init(head: 0, length: 0)])
        #expect(try memory.read(count: 2 * Self.page, at: GuestAddress(0x40000)).allSatisfy { $0 == 0 })
        // Only what was reported: the pages around it keep their contents.
        #expect(try memory.read(count: Self.page, at: GuestAddress(0x42000)).allSatisfy { $0 == 0xa5 })
        #expect(try memory.read(count: Self.page, at: GuestAddress(0x60000)).allSatisfy { $0 == 0 })
        #expect(try memory.read(count: Self.page, at: GuestAddress(0x61000)).allSatisfy { $0 == 0xa5 })
        #expect(device.bytesReported == UInt64(3 * Self.page) && device.rangesRefused == 0)
        #expect(interrupt.usedBufferCount == 1)
    }

    @Test(arguments: [
        (UInt64(0x40800), UInt32(4096)),  // not page-aligned
        (UInt64(0x40000), UInt32(100)),  // not whole pages
        (UInt64(0x40000), UInt32(0)),  // empty
    ])
    func rangesThatAreNotWholePagesAreSkipped(address: UInt64, length: UInt32) throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try reportingDevice(driver)
        try fill(0x40000, pages: 2)
        try fill(0x7e000, pages: 2)
        try report(driver, [(address, length)])
        device.queueNotified(BalloonDevice.reportingQueue)
        #expect(try driver.takeUsed().count == 1, "the chain must still come back")
        #expect(device.bytesReported == 0 && device.rangesRefused == 1)
        #expect(try memory.read(count: 2 * Self.page, at: GuestAddress(0x40000)).allSatisfy { $0 == 0xa5 })
        #expect(try memory.read(count: 2 * Self.page, at: GuestAddress(0x7e000)).allSatisfy { $0 == 0xa5 })
        #expect(interrupt.needsResetCount == 0)
    }

    /// Ranges outside guest RAM never reach the device: the virtqueue's own checks refuse the
    /// chain and ask for a reset, as for any device.
    @Test(arguments: [
        (UInt64(0x7f000), UInt32(0x2000)),  // runs past the end of RAM
        (UInt64(0x1_0000_0000), UInt32(4096)),  // outside RAM
        (UInt64.max & ~0xfff, UInt32(0x2000)),  // wraps around
    ])
    func rangesOutsideRAMBreakTheQueueAndTouchNothing(address: UInt64, length: UInt32) throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try reportingDevice(driver)
        try fill(0x7e000, pages: 2)
        try report(driver, [(address, length)])
        device.queueNotified(BalloonDevice.reportingQueue)
        #expect(interrupt.needsResetCount == 1 && device.queues[BalloonDevice.reportingQueue].isBroken)
        #expect(device.bytesReported == 0)
        #expect(try memory.read(count: 2 * Self.page, at: GuestAddress(0x7e000)).allSatisfy { $0 == 0xa5 })
    }

    @Test func deviceReadableRangesAreNeverDiscarded() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = try reportingDevice(driver)
        try fill(0x40000, pages: 1)
        try report(driver, [(0x40000, UInt32(Self.page))], flags: 0)
        device.queueNotified(BalloonDevice.reportingQueue)
        #expect(try driver.takeUsed().count == 1)
        #expect(try memory.read(count: Self.page, at: GuestAddress(0x40000)).allSatisfy { $0 == 0xa5 })
        #expect(device.rangesRefused == 1)
    }

    @Test func queuesFollowTheFeaturesAndConfigKeepsOnlyActual() throws {
        let device = BalloonDevice()
        #expect(device.availableFeatures & BalloonDevice.freePageReporting != 0)
        #expect(device.queues.count == 2)
        device.ackedFeatures = VirtioFeature.version1 | BalloonDevice.freePageReporting
        #expect(device.queues.count == 3)
        device.ackedFeatures = VirtioFeature.version1
        #expect(device.queues.count == 2)
        // num_pages is ours (0: never inflate); the driver may write actual only.
        device.writeConfig(offset: 0, bytes: [9, 9, 9, 9])
        device.writeConfig(offset: 4, bytes: [1, 2, 3, 4])
        device.writeConfig(offset: 6, bytes: [7, 7, 7, 7])
        #expect(device.configSpace == [0, 0, 0, 0, 1, 2, 3, 4] + [UInt8](repeating: 0, count: 8))
        device.reset()
        #expect(device.configSpace == [UInt8](repeating: 0, count: 16))
        // A kick before activation, or on a queue that does not exist, does nothing.
        device.queueNotified(2)
        device.queueNotified(7)
    }

    @Test func inflateAndDeflateBuffersComeBackUntouched() throws {
        let driver = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let device = BalloonDevice()
        device.queues[BalloonDevice.inflateQueue] = driver.makeQueue(maxSize: BalloonDevice.queueSize)
        try device.activate(memory: memory, interrupt: interrupt)
        // An inflate request names page frame numbers in a device-readable buffer.
        let chain = try driver.add([.readable([0x40, 0, 0, 0])])
        try fill(0x40000, pages: 1)
        device.queueNotified(BalloonDevice.inflateQueue)
        #expect(try driver.takeUsed() == [.init(head: UInt32(chain.head), length: 0)])
        #expect(try memory.read(count: Self.page, at: GuestAddress(0x40000)).allSatisfy { $0 == 0xa5 })
    }
}
