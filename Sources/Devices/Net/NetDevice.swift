import GuestMemory
import Logging
import SystemSupport
import VirtIO

/// virtio-net (id 1), one queue pair and no control queue: RX is queue 0, TX queue 1. Frames
/// move between the queues and a `NetBackend`, each behind a 12-byte `virtio_net_hdr_v1`.
///
/// Everything the guest hands over is checked before use: the queue parses and bounds every
/// chain; TX headers must match the negotiated offloads and frames must fit 14...`maxFrame`
/// bytes; RX chains must be writable only and the first of a packet must hold the header. A
/// broken queue (or an RX chain no driver would post) puts the device in DEVICE_NEEDS_RESET.
public final class NetDevice: VirtioDevice {
    /// Queue indices, in the spec's order (no control queue: VIRTIO_NET_F_CTRL_VQ is not offered).
    public enum QueueIndex: Int, CaseIterable, Sendable {
        case rx = 0
        case tx = 1
    }

    public static let queueSize: UInt16 = 256
    /// Largest frame (without the vnet header) in either direction: a 64 KiB TSO superframe
    /// plus Ethernet and VLAN headers.
    public static let maxFrame = 65_550
    /// Smallest frame: an Ethernet header.
    public static let minFrame = 14
    /// Rounds of "drain, re-enable kicks, re-check" before leaving the rest to the next kick.
    static let maxRounds = 8

    public let deviceType = VirtioDeviceType.net
    public let availableFeatures: UInt64
    public var ackedFeatures: UInt64 = 0
    public var queues = NetDevice.makeQueues(count: QueueIndex.allCases.count, maxSize: NetDevice.queueSize)
    public let config: VirtioNetConfig
    public let backend: any NetBackend

    /// Counters since creation.
    public private(set) var txFrames = 0
    public private(set) var txDropped = 0
    public private(set) var rxFrames = 0
    public private(set) var rxDropped = 0

    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    /// A frame read from the backend that did not fit the RX buffers yet.
    private var pendingFrame: [UInt8]?
    /// RX or TX refused a guest chain that no conforming driver posts; serving stops until reset.
    private var needsReset = false
    private let logger: Logger
    /// Every line below is triggered by the guest: rate-limited.
    private var guestLog = GuestLogLimiter()

    public init(
        mac: [UInt8], mtu: UInt16 = 1500, backend: any NetBackend, logger: Logger = Logger(label: "kata-swift.net")
    ) {
        config = VirtioNetConfig(mac: mac, mtu: mtu)
        self.backend = backend
        self.logger = logger
        var features = VirtioFeature.common | NetFeature.mac | NetFeature.mtu | NetFeature.status
            | NetFeature.mergeableRxBuffers
        if backend.passesVnetHeader { features |= NetFeature.offloads }
        availableFeatures = features
    }

    public var configSpace: [UInt8] { config.bytes }

    /// Whether a frame waits for RX buffers: the host may stop polling the backend until the
    /// guest kicks the RX queue.
    public var waitingForRxBuffers: Bool { pendingFrame != nil }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        do {
            try backend.setOffloads(NetOffloads(guestFeatures: ackedFeatures))
        } catch {
            throw .backendUnavailable("net: setting offloads: \(error)")
        }
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        switch QueueIndex(rawValue: index) {
        case .tx: processTX()
        case .rx: processRX()
        case nil: break
        }
    }

    /// The backend's descriptor polled readable.
    public func processBackend() {
        processRX()
    }

    public func reset() {
        memory = nil
        interrupt = nil
        pendingFrame = nil
        needsReset = false
    }

    // MARK: TX: guest to backend

    private func processTX() {
        guard let memory, !needsReset else { return }
        let tx = QueueIndex.tx.rawValue
        if let error = serveQueue(tx, memory: memory, interrupt: interrupt, rounds: Self.maxRounds, { chain in
            send(chain, memory)
            return 0
        }) {
            _ = broke(tx, "\(error)")
        }
    }

    /// Sends one TX chain's frame to the backend, or counts it dropped.
    private func send(_ chain: DescriptorChain, _ memory: some GuestMemory) {
        guard let packet = txPacket(chain, memory) else {
            txDropped += 1
            return
        }
        do {
            try backend.send(packet)
            txFrames += 1
        } catch {
            // The backend is full or gone: a NIC drops the frame, so do we.
            txDropped += 1
            guestLog.log(logger, .warning, "net TX: backend: \(error)")
        }
    }

    /// The header and frame of a TX chain, checked; nil (logged) when refused.
    private func txPacket(_ chain: DescriptorChain, _ memory: some GuestMemory) -> [UInt8]? {
        let length = chain.readableLength
        let header = UInt64(VirtioNetHeader.size)
        guard length >= header + UInt64(Self.minFrame), length <= header + UInt64(Self.maxFrame) else {
            guestLog.log(logger, .warning, "net TX: chain \(chain.head) of \(length) bytes refused")
            return nil
        }
        guard var packet = try? chain.read(from: memory, count: Int(length)),
            var parsed = VirtioNetHeader(bytes: packet)
        else { return nil }
        if let refusal = parsed.txRefusal(acked: ackedFeatures) {
            guestLog.log(logger, .warning, "net TX: chain \(chain.head): \(refusal)")
            return nil
        }
        parsed.numBuffers = 0
        packet.replaceSubrange(0..<VirtioNetHeader.size, with: parsed.bytes)
        return packet
    }

    // MARK: RX: backend to guest

    private func processRX() {
        guard let memory, !needsReset else { return }
        let rx = QueueIndex.rx.rawValue
        for _ in 0..<Self.maxRounds {
            // Out of RX buffers with a frame waiting: ask for a kick at the next buffer, and go
            // round again if the guest added one meanwhile.
            guard drainRX(memory), pendingFrame != nil, rearm(rx, memory) else { return }
        }
    }

    /// Moves backend frames into RX buffers until either runs out; false when the queue broke.
    private func drainRX(_ memory: some GuestMemory) -> Bool {
        var completed = false
        defer { if completed { interruptIfNeeded(QueueIndex.rx.rawValue, memory: memory, interrupt: interrupt) } }
        while true {
            if pendingFrame == nil {
                do {
                    pendingFrame = try backend.receive(maxLength: VirtioNetHeader.size + Self.maxFrame)
                } catch {
                    guestLog.log(logger, .error, "net RX: backend: \(error)")
                    return true
                }
            }
            guard let frame = pendingFrame else { return true }
            guard frame.count >= VirtioNetHeader.size + Self.minFrame else {
                // Nothing a guest could use (a backend bug, not the guest's).
                pendingFrame = nil
                rxDropped += 1
                continue
            }
            switch deliver(frame, memory) {
            case .delivered:
                pendingFrame = nil
                rxFrames += 1
                completed = true
            case .dropped:
                pendingFrame = nil
                rxDropped += 1
                completed = true
            case .noBuffers:
                return true
            case .broken:
                return false
            }
        }
    }

    private enum Delivery { case delivered, dropped, noBuffers, broken }

    /// Writes one frame (header first) into as many RX chains as it needs (one without
    /// MRG_RXBUF), setting num_buffers, and returns them to the driver.
    private func deliver(_ frame: [UInt8], _ memory: some GuestMemory) -> Delivery {
        let rx = QueueIndex.rx.rawValue
        let mergeable = hasAcked(NetFeature.mergeableRxBuffers)
        var chains: [DescriptorChain] = []
        var capacity: UInt64 = 0
        while capacity < UInt64(frame.count) {
            let chain: DescriptorChain
            do {
                guard let next = try queues[rx].popAvailable(memory: memory) else {
                    for _ in chains { queues[rx].undoPop() }
                    return .noBuffers
                }
                chain = next
            } catch {
                _ = broke(rx, "\(error)")
                return .broken
            }
            // A driver posts RX buffers writable only, the first of a packet big enough for
            // the header; anything else is a broken driver.
            guard chain.readable.isEmpty, !chains.isEmpty || chain.writableLength >= UInt64(VirtioNetHeader.size)
            else {
                _ = broke(rx, "RX chain \(chain.head): \(chain.readable.count) readable buffers, \(chain.writableLength) writable bytes")
                return .broken
            }
            chains.append(chain)
            capacity += chain.writableLength
            if !mergeable { break }
        }
        var header = VirtioNetHeader(bytes: frame) ?? VirtioNetHeader()
        sanitizeRx(&header)
        var packet = frame
        var dropped = false
        if capacity < UInt64(frame.count) {
            // Only without MRG_RXBUF: the one chain is too small. Return it empty.
            guestLog.log(logger, .warning, "net RX: \(frame.count)-byte frame for a \(capacity)-byte buffer dropped")
            packet = []
            dropped = true
        } else {
            header.numBuffers = UInt16(chains.count)
            packet.replaceSubrange(0..<VirtioNetHeader.size, with: header.bytes)
        }
        var offset = 0
        for chain in chains {
            var written = 0
            if offset < packet.count {
                let end = min(packet.count, offset + Int(min(chain.writableLength, UInt64(Int.max))))
                do {
                    written = try chain.write(Array(packet[offset..<end]), to: memory)
                } catch {
                    guestLog.log(logger, .error, "net RX: writing chain \(chain.head): \(error)")
                }
                offset += written
            }
            do {
                try queues[rx].addUsed(head: chain.head, length: UInt32(written), memory: memory)
            } catch {
                _ = broke(rx, "\(error)")
                return .broken
            }
        }
        return dropped ? .dropped : .delivered
    }

    /// Keeps an RX header within what the driver accepted (spec 5.1.6.4.1: no DATA_VALID or
    /// NEEDS_CSUM without GUEST_CSUM). The backend was told the offloads, so GSO should not
    /// appear unasked; if it does, the frame goes through as the backend made it.
    private func sanitizeRx(_ header: inout VirtioNetHeader) {
        if !hasAcked(NetFeature.guestCsum) { header.flags = 0 }
    }

    // MARK: notifications and interrupts

    /// Re-enables kicks on queue `index`; true when buffers arrived meanwhile (go round again).
    private func rearm(_ index: Int, _ memory: some GuestMemory) -> Bool {
        do {
            return try rearmQueue(index, memory: memory)
        } catch {
            return broke(index, "\(error)")
        }
    }

    /// Logs, stops serving and asks the driver for a reset. Returns false for `guard` use.
    private func broke(_ index: Int, _ why: String) -> Bool {
        guestLog.log(logger, .error, "net queue \(index): \(why); device needs reset")
        if !needsReset {
            needsReset = true
            interrupt?.signalNeedsReset()
        }
        return false
    }
}

extension NetDevice: SnapshotCapableDevice {
    /// The MTU the guest's driver read at probe; it bounds the MTU the guest may set. The MAC
    /// is not kept: a restored guest keeps the saved one until the agent gives its NIC the pod's
    /// (warm adoption does the same, docs/warm-sandboxes.md). A frame waiting for RX buffers
    /// is dropped, as a NIC drops what it cannot deliver; the tap itself is the new VM's.
    public func savedDeviceState() throws(DeviceStateError) -> [UInt8] {
        guard !needsReset else { throw DeviceStateError("net: the device needs a reset; a broken device is not saved") }
        var out = LittleEndianWriter()
        out.append(config.mtu)
        return out.bytes
    }

    /// The restored device's offloads go to its backend when the transport activates it.
    public func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError) {
        var input = LittleEndianReader(bytes[...])
        guard bytes.count == 2, let mtu = input.read(UInt16.self) else {
            throw DeviceStateError("net state of \(bytes.count) bytes, expected 2")
        }
        guard mtu == config.mtu else {
            throw DeviceStateError("the guest's NIC was saved with MTU \(mtu); this VM's offers \(config.mtu)")
        }
    }
}
