import GuestMemory
import Logging
import SystemSupport
import VirtIO

/// The virtio-vsock device (id 19): moves packets between the guest's RX/TX queues and a
/// `VsockBackend`. It parses and checks every TX packet the guest writes, and writes backend
/// packets into the guest's RX buffers. The event queue only holds the guest's buffers.
public final class VsockDevice: VirtioDevice {
    /// Queue indices, in the spec's order.
    public enum QueueIndex: Int, CaseIterable, Sendable {
        case rx = 0
        case tx = 1
        case event = 2
    }

    public static let queueSize: UInt16 = 256
    /// Largest payload of one packet in either direction; a TX header claiming more is dropped.
    public static let maxPayload = 64 * 1024

    public let guestCID: UInt64
    public let backend: any VsockBackend
    public let deviceType = VirtioDeviceType.vsock
    public let availableFeatures = VirtioFeature.common
    public var ackedFeatures: UInt64 = 0
    public var queues = VsockDevice.makeQueues(count: QueueIndex.allCases.count, maxSize: VsockDevice.queueSize)
    /// TX packets refused (bad length, CIDs or header) since creation.
    public private(set) var droppedPackets = 0

    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    private let logger: Logger
    /// Every line below is triggered by the guest: rate-limited.
    private var guestLog = GuestLogLimiter()

    /// Packets and payload bytes each way (the sandbox's metrics).
    public let traffic: DeviceTraffic
    /// Restored, and the guest has not yet read its CID again: host packets wait (`didRestore`).
    var awaitingCIDRead = false

    public init(
        guestCID: UInt64, backend: some VsockBackend, traffic: DeviceTraffic = DeviceTraffic(),
        logger: Logger = Logger(label: "kata-swift.vsock")
    ) {
        self.guestCID = guestCID
        self.backend = backend
        self.traffic = traffic
        self.logger = logger
    }

    /// struct virtio_vsock_config { le64 guest_cid; }. Read by the driver at probe and after a
    /// transport reset; the read releases host packets held since a restore.
    public var configSpace: [UInt8] {
        if awaitingCIDRead {
            awaitingCIDRead = false
            backend.wakeDevice()
        }
        return (0..<8).map { UInt8(truncatingIfNeeded: guestCID >> (8 * $0)) }
    }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        switch QueueIndex(rawValue: index) {
        case .tx:
            processTX()
            processRX()
        case .rx:
            processRX()
        case .event, nil:
            break
        }
    }

    /// The backend has packets for the guest (its wake handler fired).
    public func processBackend() {
        processRX()
    }

    public func reset() {
        memory = nil
        interrupt = nil
        backend.deviceReset()
    }

    // MARK: TX: guest to host

    /// Rounds of "drain, publish avail_event, re-check" before leaving the rest to the next kick.
    static let maxRounds = 8

    private func processTX() {
        guard let memory else { return }
        let tx = QueueIndex.tx.rawValue
        if let error = serveQueue(tx, memory: memory, interrupt: interrupt, rounds: Self.maxRounds, { chain in
            if let packet = parse(chain, memory: memory) {
                traffic.countFromGuest(bytes: packet.payload.count)
                backend.handleGuestPacket(packet)
            } else {
                droppedPackets += 1
            }
            return 0
        }) {
            queueBroke(tx, error)
        }
    }

    /// A TX packet, or nil (logged) when the guest's header does not match its buffers.
    private func parse(_ chain: DescriptorChain, memory: some GuestMemory) -> VsockPacket? {
        let available = chain.readableLength
        guard available >= UInt64(VsockHeader.size),
            let bytes = try? chain.read(from: memory, count: VsockHeader.size),
            let header = VsockHeader(bytes: bytes)
        else {
            guestLog.log(logger, .warning, "vsock TX: chain \(chain.head) holds \(available) bytes, less than a header")
            return nil
        }
        guard header.length <= UInt32(Self.maxPayload), UInt64(header.length) <= available - UInt64(VsockHeader.size) else {
            guestLog.log(logger, .warning, "vsock TX: header length \(header.length) vs \(available - UInt64(VsockHeader.size)) payload bytes")
            return nil
        }
        guard header.sourceCID == guestCID, header.destinationCID == VsockHeader.hostCID else {
            guestLog.log(logger, .warning, "vsock TX: CIDs \(header.sourceCID) -> \(header.destinationCID) refused")
            return nil
        }
        let payload: [UInt8]
        do {
            payload = try chain.read(from: memory, offset: UInt64(VsockHeader.size), count: Int(header.length))
        } catch {
            return nil
        }
        return VsockPacket(header: header, payload: payload)
    }

    // MARK: RX: host to guest

    private func processRX() {
        guard let memory, !awaitingCIDRead else { return }
        let rx = QueueIndex.rx.rawValue
        for _ in 0..<Self.maxRounds {
            // Out of RX buffers with packets waiting: ask for a kick at the next buffer, and go
            // round again if the guest added one meanwhile.
            guard drainRX(memory), backend.hasPendingPackets, rearm(rx, memory) else { return }
        }
    }

    /// Fills RX buffers while the backend has packets; false when the queue broke.
    private func drainRX(_ memory: some GuestMemory) -> Bool {
        let rx = QueueIndex.rx.rawValue
        var completed = false
        while backend.hasPendingPackets {
            let chain: DescriptorChain
            do {
                guard let next = try queues[rx].popAvailable(memory: memory) else { break }
                chain = next
            } catch {
                queueBroke(rx, error)
                return false
            }
            let capacity = chain.writableLength
            var used: UInt32 = 0
            if capacity >= UInt64(VsockHeader.size) {
                let room = Int(min(capacity - UInt64(VsockHeader.size), UInt64(Self.maxPayload)))
                guard var packet = backend.nextPacketForGuest(maxPayload: room) else {
                    queues[rx].undoPop()
                    break
                }
                packet.header.sourceCID = VsockHeader.hostCID
                packet.header.destinationCID = guestCID
                do {
                    used = UInt32(try chain.write(packet.header.bytes + packet.payload, to: memory))
                    traffic.countToGuest(bytes: packet.payload.count)
                } catch {
                    guestLog.log(logger, .error, "vsock RX: writing chain \(chain.head): \(error)")
                }
            } else {
                guestLog.log(logger, .warning, "vsock RX: chain \(chain.head) has \(capacity) writable bytes, less than a header")
            }
            do {
                try queues[rx].addUsed(head: chain.head, length: used, memory: memory)
            } catch {
                queueBroke(rx, error)
                return false
            }
            completed = true
        }
        if completed { interruptIfNeeded(rx, memory: memory, interrupt: interrupt) }
        return true
    }

    // MARK: notifications and interrupts

    /// Re-arms kicks on queue `index`; true when buffers arrived meanwhile (go round again).
    private func rearm(_ index: Int, _ memory: some GuestMemory) -> Bool {
        (try? rearmQueue(index, memory: memory)) == true
    }

    private func queueBroke(_ index: Int, _ error: QueueError) {
        guestLog.log(logger, .error, "vsock queue \(index): \(error)")
        interrupt?.signalNeedsReset()
    }
}

// MARK: snapshots (docs/snapshots.md)

extension VsockDevice: SnapshotCapableDevice {
    /// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, the event queue's only event (virtio 5.10.6.7).
    static let transportResetEvent: UInt32 = 0

    /// Nothing beyond the transport: the guest's CID is configuration, and a VM is saved only
    /// with no connection open (a connection's peer would not exist in the restored VM).
    public func savedDeviceState() throws(DeviceStateError) -> [UInt8] {
        let open = backend.connectionCount
        guard open == 0 else { throw DeviceStateError("\(open) vsock connections are open; save with none") }
        return []
    }

    public func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError) { try restoreEmptyState(bytes, name: "vsock") }

    /// Tells the guest its transport was reset, Firecracker's way: the driver drops every
    /// connection, keeps its listeners and reads the guest CID again, so a restored VM answers
    /// on its own CID, not the template's. Until that read, packets from the host wait: the
    /// driver handles the event on a work queue, and a connection it accepted before would be
    /// answered from the template's CID (and refused here).
    public func didRestore() {
        guard let memory else { return }
        awaitingCIDRead = true
        let event = QueueIndex.event.rawValue
        do {
            guard let chain = try queues[event].popAvailable(memory: memory) else {
                guestLog.log(logger, .warning, "vsock: no event buffer for the transport reset after a restore")
                return
            }
            var message = LittleEndianWriter()  // struct virtio_vsock_event { le32 id; }
            message.append(Self.transportResetEvent)
            let written = try chain.write(message.bytes, to: memory)
            try queues[event].addUsed(head: chain.head, length: UInt32(written), memory: memory)
            interruptIfNeeded(event, memory: memory, interrupt: interrupt)
        } catch let error as QueueError {
            queueBroke(event, error)
        } catch {
            guestLog.log(logger, .error, "vsock: writing the transport reset event: \(error)")
        }
    }
}

