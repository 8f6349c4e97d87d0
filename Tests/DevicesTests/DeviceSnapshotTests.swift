import Devices
import FUSE
import Glibc
import GuestMemory
import SystemSupport
import Testing
import VirtIO
import VirtIOTestSupport

/// Each device model's record in a VM snapshot: saved from a device a driver set up, restored
/// into a fresh transport over a fresh device on the same guest memory (what a restored VM
/// sees), and refused where the device holds what a snapshot cannot carry.
@Suite struct DeviceSnapshotTests {
    let memory = HeapGuestMemory(size: 0x100000)

    /// A vsock device set up by the driver, with `events` buffers on its event queue.
    struct VsockGuest {
        let rx: FakeVirtqueueDriver
        let tx: FakeVirtqueueDriver
        let event: FakeVirtqueueDriver
        let eventChains: [FakeVirtqueueDriver.Chain]
        let transport: MmioTransport

        init(memory: HeapGuestMemory, device: VsockDevice, events: Int = 2) throws {
            rx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x20000)
            tx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x30000), dataSize: 0x30000)
            let event = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x70000), dataSize: 0x1000)
            self.event = event
            transport = MmioTransport(device: device, memory: memory, interruptLine: RecordingInterruptLine())
            MmioDriver(transport: transport).initialise(queues: [rx, tx, event])
            eventChains = try (0..<events).map { _ in try event.add([.writable(4)]) }
        }
    }

    @Test func aRestoredVsockDeviceResetsTheGuestsTransportAndServesItsNewCID() throws {
        let guest = try VsockGuest(memory: memory, device: VsockDevice(guestCID: 3, backend: VsockMuxer()))
        let record = try guest.transport.savedRecord()

        // The clone: another CID, another muxer, the same guest memory.
        let muxer = VsockMuxer()
        let listener = try muxer.listen(port: 1024)
        let line = RecordingInterruptLine()
        let restored = MmioTransport(device: VsockDevice(guestCID: 7, backend: muxer), memory: memory, interruptLine: line)
        try restored.restoreRecord(record)
        let driver = MmioDriver(transport: restored)
        #expect(driver.status.contains(.driverOK))

        // The host connects at once; its REQUEST waits until the guest has read its new CID
        // (a reply from the template's CID would be refused).
        let stream = try muxer.connect(port: 2000)
        defer { stream.close() }
        let rxChain = try guest.rx.add([.writable(4096 + 44)])
        restored.write(offset: MmioRegister.queueNotify.rawValue, bytes: [0, 0, 0, 0])
        #expect(try guest.rx.takeUsed().isEmpty, "held until the driver reads its CID")
        #expect(restored.read(offset: 0x100, count: 8) == [7, 0, 0, 0, 0, 0, 0, 0], "the driver re-reads the CID after the reset")
        restored.write(offset: MmioRegister.queueNotify.rawValue, bytes: [0, 0, 0, 0])
        let delivered = try guest.rx.takeUsed()
        #expect(delivered.count == 1)
        let header = try #require(VsockHeader(bytes: try guest.rx.written(rxChain, count: VsockHeader.size)))
        #expect(header.operation == .request && header.destinationCID == 7 && header.destinationPort == 2000)

        // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in the first event buffer, and an interrupt for it.
        let used = try guest.event.takeUsed()
        #expect(used == [.init(head: UInt32(guest.eventChains[0].head), length: 4)])
        #expect(try guest.event.written(guest.eventChains[0], count: 4) == [0, 0, 0, 0])
        #expect(line.count >= 1 && driver.read(.interruptStatus) & 1 == 1)

        // The guest, on its new CID, connects to the host: the restored device carries it.
        let request = VsockHeader(
            sourceCID: 7, destinationCID: VsockHeader.hostCID, sourcePort: 5000, destinationPort: 1024,
            op: .request, bufferAllocation: 0x10000)
        _ = try guest.tx.add([.readable(request.bytes)])
        restored.write(offset: MmioRegister.queueNotify.rawValue, bytes: [1, 0, 0, 0])
        #expect(try guest.tx.takeUsed().count == 1)
        #expect(listener.accept() != nil, "the guest's connection reached the clone's listener")
    }

    @Test func aVsockDeviceWithAnOpenConnectionIsNotSaved() throws {
        let muxer = VsockMuxer()
        let guest = try VsockGuest(memory: memory, device: VsockDevice(guestCID: 3, backend: muxer))
        _ = try muxer.connect(port: 1024)
        #expect(throws: TransportStateError.device(.vsock, DeviceStateError("1 vsock connections are open; save with none"))) {
            try guest.transport.savedRecord()
        }
    }

    @Test func aBlockDeviceRestoresOnlyOverTheImageItWasSavedWith() throws {
        let image = try TemporaryImage(size: 4096)
        let queue = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let transport = MmioTransport(
            device: BlkDevice(backend: try FileBlockBackend(path: image.path)), memory: memory, interruptLine: RecordingInterruptLine())
        MmioDriver(transport: transport).initialise(queues: [queue])
        let record = try transport.savedRecord()

        let same = MmioTransport(
            device: BlkDevice(backend: try FileBlockBackend(path: image.path)), memory: memory, interruptLine: RecordingInterruptLine())
        try same.restoreRecord(record)
        #expect(same.isActivated)

        let other = try TemporaryImage(size: 4096)  // the same bytes, another file
        let elsewhere = MmioTransport(
            device: BlkDevice(backend: try FileBlockBackend(path: other.path)), memory: memory, interruptLine: RecordingInterruptLine())
        #expect(throws: TransportStateError.device(.block, DeviceStateError(
            "the disk image is not the one the VM was saved with (device, inode, size or modification time differ)"))) {
            try elsewhere.restoreRecord(record)
        }
        #expect(!elsewhere.isActivated)
    }

    @Test func aBalloonComesBackWithItsReportingQueueAndTheDriversActual() throws {
        let queues = try (0..<3).map { try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000 + 0x8000 * UInt64($0))) }
        let transport = MmioTransport(device: BalloonDevice(), memory: memory, interruptLine: RecordingInterruptLine())
        MmioDriver(transport: transport).initialise(queues: queues)
        transport.write(offset: 0x100 + 4, bytes: [0x10, 0, 0, 0])  // actual = 16 pages
        let record = try transport.savedRecord()

        let fresh = BalloonDevice()
        let restored = MmioTransport(device: fresh, memory: memory, interruptLine: RecordingInterruptLine())
        try restored.restoreRecord(record)
        #expect(restored.isActivated && fresh.queues.count == 3 && fresh.queues.allSatisfy(\.isReady))
        #expect(Array(fresh.configSpace[4..<8]) == [0x10, 0, 0, 0])
    }

    @Test func recordsAreCheckedBeforeAnythingIsSet() throws {
        let queue = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x1000))
        let transport = MmioTransport(device: RngDevice(), memory: memory, interruptLine: RecordingInterruptLine())
        MmioDriver(transport: transport).initialise(queues: [queue])
        let record = try transport.savedRecord()

        let vsock = MmioTransport(device: VsockDevice(guestCID: 3, backend: VsockMuxer()), memory: memory, interruptLine: RecordingInterruptLine())
        #expect(throws: TransportStateError.malformed("a virtio-rng record for a virtio-vsock device")) { try vsock.restoreRecord(record) }
        let rng = MmioTransport(device: RngDevice(), memory: memory, interruptLine: RecordingInterruptLine())
        #expect(throws: TransportStateError.device(.rng, DeviceStateError("rng state of 1 bytes, expected none"))) {
            try rng.restoreRecord(record + [0])
        }
        var cut = record
        cut[4] = 0xff  // a transport state longer than the record
        #expect(throws: TransportStateError.malformed("transport state of 255 bytes, \(record.count - 8) left")) {
            try rng.restoreRecord(cut)
        }
        #expect(!rng.isActivated)
    }

    @Test func aDeviceModelWithoutSnapshotSupportIsRefusedByName() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        let peer = FileDescriptor(owning: fds[1])
        defer { _ = peer }
        let backend = FrameDescriptorBackend(descriptor: FileDescriptor(owning: fds[0]))
        let transport = MmioTransport(
            device: NetDevice(mac: [2, 0, 0, 0, 0, 1], backend: backend), memory: memory, interruptLine: RecordingInterruptLine())
        #expect(throws: TransportStateError.device(.net, DeviceStateError("this device model cannot be saved"))) {
            try transport.savedRecord()
        }
    }
}

extension VirtioFsDeviceTests {
    @Test func virtioFsIsSavedOnlyBeforeTheGuestMountsIt() throws {
        let h = try Harness(memory: memory, interrupt: interrupt)
        #expect(try h.device.savedDeviceState() == [])
        try h.initialize()
        #expect(throws: DeviceStateError("the guest has mounted virtio-fs \"kataShared\"; save before the mount")) {
            try h.device.savedDeviceState()
        }
    }
}
