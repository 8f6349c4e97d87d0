import Devices
import Glibc
import GuestMemory
import Synchronization
import SystemSupport
import Testing
import VirtIO
import VirtIOTestSupport
@testable import VMM

/// The test driver through the VMM: the exit dispatch over a bus (exactly as a vCPU thread
/// dispatches a guest access), or a slot directly.
extension MmioDriver {
    init(bus: Bus, base: UInt64) {
        self.init(
            load: { offset, size in
                guard case .completeRead(let bytes) = handle(.mmioRead(address: base + offset, size: size), pio: Bus(), mmio: bus) else {
                    return []
                }
                return bytes
            },
            store: { offset, data in _ = handle(.mmioWrite(address: base + offset, data: data), pio: Bus(), mmio: bus) })
    }

    init(slot: VirtioMmioSlot) {
        self.init(load: { slot.read(offset: $0, size: $1) }, store: { _ = slot.write(offset: $0, data: $1) })
    }
}

/// virtio-mmio slots on the VMM's MMIO bus, driven by a fake driver through the exit dispatch
/// (no KVM): register decode on the "vCPU" side, queue work only on the device event loop.
@Suite struct VirtioSlotTests {
    let memory = HeapGuestMemory(size: 0x100000)
    let bus = Bus()
    let line = RecordingInterruptLine()

    @Test func rngThroughTheBusRunsOnlyOnTheDeviceThread() throws {
        let slot = try VirtioMmioSlot(spec: .rng(), base: 0xd000_0000, irq: 5, memory: memory, interruptLine: line)
        try bus.register(slot, base: slot.base, length: 0x1000)
        #expect(slot.cmdlineEntry == "virtio_mmio.device=4K@0xd0000000:5")
        let driver = MmioDriver(bus: bus, base: slot.base)
        #expect(driver.read(.magicValue) == MmioRegister.magic && driver.read(.deviceID) == 4)
        let queue = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x10000))
        driver.initialise(queues: [queue])
        #expect(slot.status.contains(.driverOK) && !slot.status.contains(.deviceNeedsReset))

        // The kick only rings the doorbell: nothing is done on the dispatching thread.
        let chain = try queue.add([.writable(64)])
        driver.write(.queueNotify, 0)
        #expect(try queue.usedIndex() == 0 && slot.queueRunCount == 0 && slot.trappedKickCount == 1)
        #expect(try slot.queueEvents[0].consume() == 1)

        // The event loop runs the queue and interrupts.
        try slot.queueEvents[0].signal()
        let loop = try DeviceEventLoop(slots: [slot])
        try loop.start()
        defer { loop.stop() }
        #expect(try waitUntil { try queue.usedIndex() == 1 })
        // The device thread counts the run after the used index is published: wait for the count.
        #expect(waitUntil { slot.queueRunCount == 1 })
        let used = try queue.takeUsed()
        #expect(used == [.init(head: UInt32(chain.head), length: 64)])
        #expect(try queue.written(chain, count: 64) != [UInt8](repeating: 0, count: 64))
        #expect(waitUntil { line.count == 1 })
        #expect(driver.read(.interruptStatus) == 1)
        driver.write(.interruptACK, 1)
        #expect(driver.read(.interruptStatus) == 0)
    }

    @Test func blkReadsTheImageOnTheConfinedDeviceThread() throws {
        var template = Array("/tmp/kata-blk-slot-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(path) }
        let image = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
        try FileDescriptor(owning: fd).writeAll(image)
        let device = BlkDevice(backend: try FileBlockBackend(path: path))
        let slot = try VirtioMmioSlot(spec: .blk(device), base: 0xd000_2000, irq: 7, memory: memory, interruptLine: line)
        try bus.register(slot, base: slot.base, length: 0x1000)
        let driver = MmioDriver(bus: bus, base: slot.base)
        #expect(driver.read(.deviceID) == 2)
        // Capacity through the config window, as the guest's driver reads it.
        #expect(driver.load(MmioRegister.configOffset, 4) == [16, 0, 0, 0])
        let queue = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x10000))
        driver.initialise(queues: [queue])
        #expect(slot.status.contains(.driverOK))
        let loop = try DeviceEventLoop(slots: [slot])
        try loop.start()
        defer { loop.stop() }

        // The loop's thread ("virtio-devices") runs under ThreadConfinement.device: the read
        // is a pread64 there, and a refused one would come back as IOERR.
        let header: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]
        let chain = try queue.add([.readable(header), .writable(1024), .writable(1)])
        driver.write(.queueNotify, 0)
        #expect(try waitUntil { try queue.usedIndex() == 1 })
        #expect(try queue.takeUsed() == [.init(head: UInt32(chain.head), length: 1025)])
        #expect(try queue.written(chain, count: 1025) == Array(image[(3 * 512)..<(5 * 512)]) + [0])
        #expect(device.bytesRead == 1024)
    }

    @Test func vsockBackendWakesTheDeviceThread() throws {
        let muxer = VsockMuxer()
        let device = VsockDevice(guestCID: 3, backend: muxer)
        let slot = try VirtioMmioSlot(
            spec: .vsock(device, muxer: muxer), base: 0xd000_1000, irq: 6, memory: memory, interruptLine: line)
        try bus.register(slot, base: slot.base, length: 0x1000)
        let driver = MmioDriver(bus: bus, base: slot.base)
        #expect(driver.read(.deviceID) == 19)
        let rx = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x10000))
        let tx = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x30000))
        let event = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x50000), dataSize: 0x1000)
        driver.initialise(queues: [rx, tx, event])
        #expect(slot.status.contains(.driverOK))
        let loop = try DeviceEventLoop(slots: [slot])
        try loop.start()
        defer { loop.stop() }

        // RX buffers; then a host connect: the muxer's wake reaches the loop, REQUEST goes out.
        let chain = try rx.add([.writable(4096 + 44)])
        driver.write(.queueNotify, 0)
        let stream = try muxer.connect(port: 1024)
        #expect(try waitUntil { try rx.usedIndex() == 1 })
        let header = try #require(VsockHeader(bytes: try rx.written(chain, count: VsockHeader.size)))
        #expect(header.operation == .request && header.destinationPort == 1024 && header.destinationCID == 3)
        #expect(stream.phase == .connecting)
    }

    @Test func registerAccessesBeforeDriverOKDoNoDeviceWork() throws {
        let slot = try VirtioMmioSlot(spec: .rng(), base: 0xd000_0000, irq: 5, memory: memory, interruptLine: line)
        // A kick before DRIVER_OK, and a bogus queue index: ignored by the transport.
        slot.runQueue(0)
        _ = slot.write(offset: MmioRegister.queueNotify.rawValue, data: [9, 0, 0, 0])
        #expect(slot.status == [] && line.count == 0)
        #expect(try slot.queueEvents[0].consume() == nil)
    }
}
