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

    /// A net backend over a socket pair that records the offloads it is given.
    final class RecordingNetBackend: NetBackend, @unchecked Sendable {
        // SAFETY (Sendable): used from the test's thread only.
        let frames: FrameDescriptorBackend
        let peer: FileDescriptor
        private(set) var offloads: [NetOffloads] = []

        init() throws {
            var fds: [Int32] = [-1, -1]
            let kind = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
            guard socketpair(AF_UNIX, kind, 0, &fds) == 0 else { throw Errno.current }
            frames = FrameDescriptorBackend(descriptor: FileDescriptor(owning: fds[0]))
            peer = FileDescriptor(owning: fds[1])
        }

        var readinessDescriptor: FileDescriptor { frames.readinessDescriptor }
        var passesVnetHeader: Bool { true }
        func send(_ packet: [UInt8]) throws(Errno) { try frames.send(packet) }
        func receive(maxLength: Int) throws(Errno) -> [UInt8]? { try frames.receive(maxLength: maxLength) }
        func setOffloads(_ offloads: NetOffloads) throws(Errno) { self.offloads.append(offloads) }

        func peerSend(_ packet: [UInt8]) { _ = packet.withUnsafeBytes { write(peer.rawValue, $0.baseAddress, $0.count) } }
        func peerReceive() -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { read(peer.rawValue, $0.baseAddress, $0.count) }
            return n < 0 ? nil : Array(buffer[..<n])
        }
    }

    @Test func aRestoredNICServesTheNewTapWithTheOffloadsTheDriverAccepted() throws {
        let rx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x20000)
        let tx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x30000), dataSize: 0x20000)
        let saved = MmioTransport(
            device: NetDevice(mac: [2, 0, 0, 0, 0, 1], backend: try RecordingNetBackend()), memory: memory,
            interruptLine: RecordingInterruptLine())
        MmioDriver(transport: saved).initialise(queues: [rx, tx])
        let acked = saved.device.ackedFeatures
        let buffer = try rx.add([.writable(2048)])  // posted at probe, before the save
        let record = try saved.savedRecord()
        #expect(Array(record.suffix(2)) == [0xdc, 0x05], "the MTU the guest read (1500)")

        // The clone: another MAC (the agent gives the guest NIC the pod's), another tap.
        let backend = try RecordingNetBackend()
        let device = NetDevice(mac: [2, 0, 0, 0, 0, 2], backend: backend)
        let restored = MmioTransport(device: device, memory: memory, interruptLine: RecordingInterruptLine())
        try restored.restoreRecord(record)
        #expect(restored.isActivated && device.ackedFeatures == acked)
        #expect(backend.offloads == [NetOffloads(guestFeatures: acked)] && backend.offloads[0].contains([.csum, .tso4]))

        // A frame from the new tap lands in the buffer the guest posted before the save.
        let frame = [UInt8](repeating: 0xff, count: 6) + [2, 0, 0, 0, 0, 9, 0x08, 0x00] + [UInt8](repeating: 0x5a, count: 50)
        backend.peerSend(VirtioNetHeader().bytes + frame)
        device.processBackend()
        let used = try rx.takeUsed()
        #expect(used.count == 1 && used.first?.head == UInt32(buffer.head))
        #expect(try rx.written(buffer, count: VirtioNetHeader.size + frame.count).suffix(frame.count) == frame[...])
        // And the guest's frame goes out on it.
        _ = try tx.add([.readable(VirtioNetHeader().bytes + frame)])
        restored.write(offset: MmioRegister.queueNotify.rawValue, bytes: [1, 0, 0, 0])
        #expect(backend.peerReceive()?.suffix(frame.count) == frame[...])

        // A NIC with another MTU would let the guest exceed it: refused before anything is set.
        let narrower = MmioTransport(
            device: NetDevice(mac: [2, 0, 0, 0, 0, 3], mtu: 1450, backend: try RecordingNetBackend()), memory: memory,
            interruptLine: RecordingInterruptLine())
        #expect(throws: TransportStateError.device(.net, DeviceStateError("the guest's NIC was saved with MTU 1500; this VM's offers 1450"))) {
            try narrower.restoreRecord(record)
        }
        #expect(!narrower.isActivated)
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
