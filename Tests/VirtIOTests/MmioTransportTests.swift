import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

@Suite struct MmioTransportTests {
    let memory = HeapGuestMemory(size: 0x40000)
    let device = DummyDevice()
    let line = RecordingInterruptLine()
    let transport: MmioTransport
    let driver: MmioDriver
    let queue0: FakeVirtqueueDriver
    let queue1: FakeVirtqueueDriver

    init() throws {
        transport = MmioTransport(device: device, memory: memory, interruptLine: line)
        driver = MmioDriver(transport: transport)
        queue0 = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        queue1 = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x20000))
    }

    /// The whole Linux virtio_mmio probe sequence, up to DRIVER_OK.
    func initialise(features: UInt64? = nil) {
        driver.initialise(queues: [queue0, queue1], features: features)
    }

    @Test func identificationRegisters() {
        #expect(driver.read(.magicValue) == 0x7472_6976)
        #expect(driver.read(.version) == 2)
        #expect(driver.read(.deviceID) == 42)
        #expect(driver.read(.vendorID) == MmioRegister.vendor)
        #expect(driver.deviceFeatures() == VirtioFeature.common | 0b101)
        driver.write(.deviceFeaturesSelect, 2)
        #expect(driver.read(.deviceFeatures) == 0)
        #expect(driver.read(.status) == 0)
        #expect(driver.read(.interruptStatus) == 0)
        #expect(driver.read(.configGeneration) == 0)
        #expect(driver.read(.shmLengthLow) == .max && driver.read(.shmLengthHigh) == .max)
        #expect(transport.ignoredAccesses == 0)
    }

    @Test func fullInitialisationHandshake() throws {
        driver.write(.status, 0)
        driver.setStatus(.acknowledge)
        #expect(driver.status == .acknowledge)
        driver.setStatus(.driver)
        #expect(driver.status == [.acknowledge, .driver])
        let offered = driver.deviceFeatures()
        driver.acceptFeatures(offered & ~0b100)
        driver.setStatus(.featuresOK)
        #expect(driver.status == [.acknowledge, .driver, .featuresOK])
        #expect(device.ackedFeatures == offered & ~0b100)

        for (index, maxSize) in [(0, 16), (1, 16), (2, 0)] {
            driver.write(.queueSelect, UInt32(index))
            #expect(driver.read(.queueNumMax) == UInt32(maxSize))
            #expect(driver.read(.queueReady) == 0)
        }
        driver.setUpQueue(0, queue0)
        driver.setUpQueue(1, queue1)
        driver.write(.queueSelect, 0)
        #expect(driver.read(.queueReady) == 1)
        #expect(device.queues[0].size == 8 && device.queues[1].size == 16)
        #expect(device.queues[1].descriptorTable == queue1.descriptorTable)
        #expect(device.queues[1].availableRing == queue1.availableRing)
        #expect(device.queues[1].usedRing == queue1.usedRing)
        #expect(device.queues.allSatisfy { $0.eventIndexEnabled && $0.indirectEnabled })

        driver.setStatus(.driverOK)
        #expect(driver.status == [.acknowledge, .driver, .featuresOK, .driverOK])
        #expect(transport.isActivated && device.activations == 1)
        #expect(transport.ignoredAccesses == 0)

        driver.write(.queueNotify, 1)
        #expect(device.notified == [1])

        // The device interrupts; the driver reads and acknowledges.
        try #require(device.interrupt).trigger(.usedBuffer)
        #expect(line.count == 1)
        #expect(driver.read(.interruptStatus) == 1)
        driver.write(.interruptACK, 1)
        #expect(driver.read(.interruptStatus) == 0)

        // Reset brings everything back.
        driver.write(.status, 0)
        #expect(driver.status == [] && !transport.isActivated && device.resets == 2, "the probe began with a reset too")
        #expect(device.ackedFeatures == 0)
        #expect(device.queues.allSatisfy { !$0.isReady && $0.size == 16 })
        driver.write(.queueNotify, 0)
        #expect(device.notified == [1], "no notify reaches an inactive device")
    }

    @Test func refusesFeaturesTheDeviceDidNotOffer() {
        driver.setStatus(.acknowledge)
        driver.setStatus(.driver)
        driver.acceptFeatures(VirtioFeature.version1 | 0b10)
        driver.setStatus(.featuresOK)
        #expect(!driver.status.contains(.featuresOK))
        driver.acceptFeatures(0b1)
        driver.setStatus(.featuresOK)
        #expect(!driver.status.contains(.featuresOK), "VERSION_1 is required")
        driver.acceptFeatures(VirtioFeature.version1 | 0b1)
        driver.setStatus(.featuresOK)
        #expect(driver.status.contains(.featuresOK))
        #expect(device.queues.allSatisfy { !$0.eventIndexEnabled && !$0.indirectEnabled })
    }

    @Test func configSpaceAccessesOfEveryWidth() {
        #expect(transport.read(offset: 0x100, count: 1) == [0x11])
        #expect(transport.read(offset: 0x101, count: 2) == [0x22, 0x33])
        #expect(transport.read(offset: 0x102, count: 8) == [0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa])
        #expect(transport.ignoredAccesses == 0)
        #expect(transport.read(offset: 0x103, count: 8) == Array(repeating: 0, count: 8))
        #expect(transport.read(offset: 0x100, count: 3) == [0, 0, 0])
        #expect(transport.read(offset: 0xfff, count: 1) == [0])
        #expect(transport.ignoredAccesses == 3)
        transport.write(offset: 0x108, bytes: [1, 2])
        #expect(device.configSpace[8...] == [1, 2])
        transport.write(offset: 0x109, bytes: [1, 2])
        #expect(transport.ignoredAccesses == 4 && device.configWrites.count == 1)
    }

    @Test func badRegisterAccessesAreIgnored() {
        #expect(transport.read(offset: 0x000, count: 2) == [0, 0])
        #expect(transport.read(offset: 0x0f0, count: 4) == [0, 0, 0, 0])
        #expect(transport.read(offset: 0x002, count: 4) == [0, 0, 0, 0])
        #expect(transport.read(offset: MmioRegister.queueNotify.rawValue, count: 4) == [0, 0, 0, 0])
        transport.write(offset: MmioRegister.status.rawValue, bytes: [1])
        driver.write(.magicValue, 0)
        driver.write(.deviceID, 7)
        #expect(transport.ignoredAccesses == 7)
        #expect(driver.read(.deviceID) == 42 && driver.status == [])

        // Out of order: DRIVER before ACKNOWLEDGE, features before DRIVER, queues before FEATURES_OK.
        driver.setStatus(.driver)
        #expect(driver.status == [])
        driver.setStatus(.acknowledge)
        driver.acceptFeatures(VirtioFeature.version1)
        driver.setUpQueue(0, queue0)
        #expect(!device.queues[0].isReady && device.queues[0].size == 16)
        driver.setStatus(.driverOK)
        #expect(driver.status == .acknowledge)
        // Clearing a bit other than by reset.
        driver.setStatus(.driver)
        driver.write(.status, DeviceStatus.driver.rawValue)
        #expect(driver.status == [.acknowledge, .driver])
        #expect(transport.ignoredAccesses > 7)
    }

    @Test func queueRegistersAreFrozenAfterDriverOK() {
        initialise()
        let before = device.queues
        driver.write(.queueSelect, 0)
        driver.write(.queueNum, 4)
        driver.write(.queueDescLow, 0x3000)
        driver.write(.queueReady, 0)
        driver.write(.queueSelect, 9)
        driver.write(.queueReady, 1)
        driver.write(.queueNotify, 9)
        driver.acceptFeatures(0)
        #expect(device.queues.map(\.size) == before.map(\.size))
        #expect(device.queues.map(\.descriptorTable) == before.map(\.descriptorTable))
        #expect(device.queues[0].isReady)
        #expect(device.ackedFeatures != 0 && device.notified.isEmpty)
        #expect(transport.ignoredAccesses == 7, "QueueSelect of a missing queue is allowed; the rest is not")
    }

    @Test func invalidQueueAtDriverOKMeansNeedsReset() {
        driver.setStatus(.acknowledge)
        driver.setStatus(.driver)
        driver.acceptFeatures(driver.deviceFeatures())
        driver.setStatus(.featuresOK)
        driver.setUpQueue(0, queue0)
        driver.write(.queueSelect, 1)
        driver.write(.queueNum, 3)  // not a power of two
        driver.write(.queueReady, 1)
        driver.setStatus(.driverOK)
        #expect(driver.status.contains(.deviceNeedsReset))
        #expect(!transport.isActivated && device.activations == 0)
        #expect(driver.read(.interruptStatus) == 2 && line.count == 1)
        #expect(driver.read(.configGeneration) == 1)
        driver.write(.status, 0)
        #expect(driver.status == [])
    }

    @Test func failedActivationMeansNeedsReset() {
        device.activateShouldFail = true
        initialise()
        #expect(driver.status.contains(.deviceNeedsReset) && !transport.isActivated)
        device.activateShouldFail = false
        initialise()
        #expect(driver.status == [.acknowledge, .driver, .featuresOK, .driverOK] && transport.isActivated)
    }

    @Test func brokenQueueAfterANotifyMeansNeedsReset() throws {
        device.popOnNotify = true
        initialise()
        try queue0.publish(head: 200)
        driver.write(.queueNotify, 0)
        #expect(device.queues[0].isBroken)
        #expect(driver.status.contains(.deviceNeedsReset))
        #expect(driver.read(.interruptStatus) & 2 != 0)
        initialise()
        #expect(!driver.status.contains(.deviceNeedsReset) && !device.queues[0].isBroken)
    }

    @Test func failedBitMayBeSetAnyTime() {
        driver.setStatus(.acknowledge)
        driver.setStatus(.failed)
        #expect(driver.status == [.acknowledge, .failed])
    }
}
