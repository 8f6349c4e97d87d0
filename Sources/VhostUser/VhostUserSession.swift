import Devices
import GuestMemory
import Logging
import VirtIO

/// The backend side of one vhost-user connection: serves a `VirtioDevice` model to a frontend
/// VMM (QEMU) that owns the transport. It decodes each request, updates queue and memory state,
/// starts the device once every ring is configured, started (kick fd) and enabled, and stops it
/// on GET_VRING_BASE. Errors are returned, never trapped; fds are closed when replaced.
public final class VhostUserSession {
    public let device: any VirtioDevice
    /// Queues served over vhost-user (vsock: rx and tx; QEMU keeps the event queue).
    public let queueCount: Int
    private let platform: any VhostUserPlatform
    private let logger: Logger
    private let interrupt = VhostUserInterrupt()

    /// Protocol features we offer: MQ, REPLY_ACK, CONFIG.
    public static let offeredProtocolFeatures = VhostUserFeature.multiQueue | VhostUserFeature.replyAck | VhostUserFeature.config

    private struct Ring {
        var kickFD: Int32?
        var callFD: Int32?
        var errorFD: Int32?
        var started = false
        var enabled = false
    }

    public private(set) var hasOwner = false
    public private(set) var protocolFeatures: UInt64 = 0
    /// The features word of the last SET_FEATURES, including VHOST_USER_F_PROTOCOL_FEATURES.
    public private(set) var negotiatedFeatures: UInt64 = 0
    public private(set) var memoryRegions: [VhostUserMemoryRegion] = []
    public private(set) var isActive = false
    private var memory: (any GuestMemory)?
    private var rings: [Ring]

    public init(device: any VirtioDevice, queueCount: Int, platform: some VhostUserPlatform,
                logger: Logger = Logger(label: "kata-swift.vhost-user")) {
        self.device = device
        self.queueCount = queueCount
        self.platform = platform
        self.logger = logger
        self.rings = Array(repeating: Ring(), count: queueCount)
        resetQueues()
    }

    deinit {
        for ring in rings { [ring.kickFD, ring.callFD, ring.errorFD].compactMap { $0 }.forEach(platform.close) }
    }

    /// The frontend's features word: the device's plus VHOST_USER_F_PROTOCOL_FEATURES.
    public var offeredFeatures: UInt64 { device.availableFeatures | VhostUserFeature.protocolFeatures }

    /// The kick fd of ring `index`, for the server's event loop to watch.
    public func kickFD(ofQueue index: Int) -> Int32? { rings.indices.contains(index) ? rings[index].kickFD : nil }

    /// The kick eventfd of `index` fired: the driver added buffers.
    public func kick(queue index: Int) {
        guard isActive, index < queueCount else { return }
        device.queueNotified(index)
    }

    /// Handles one message with the fds that came with it; returns the reply to send, if any.
    /// On error the fds are closed, and a NEED_REPLY request gets a failure reply from `reply(to:error:)`.
    public func handle(_ message: VhostUserMessage, fds: [Int32] = []) throws(VhostUserError) -> VhostUserMessage? {
        var unused = fds
        defer { unused.forEach(platform.close) }
        guard let request = message.knownRequest else { throw .unsupportedRequest(message.request) }
        let payload = message.payload
        var reply: [UInt8]?

        switch request {
        case .getFeatures:
            reply = LittleEndian.bytes(offeredFeatures)
        case .setFeatures:
            let features = try u64Payload(request, payload)
            let unknown = features & ~offeredFeatures
            guard unknown == 0 else { throw .unofferedFeatures(request: request, bits: unknown) }
            negotiatedFeatures = features
            device.ackedFeatures = features & ~VhostUserFeature.protocolFeatures
            for i in 0..<queueCount {
                device.queues[i].eventIndexEnabled = features & VirtioFeature.eventIndex != 0
                device.queues[i].indirectEnabled = features & VirtioFeature.indirectDescriptors != 0
            }
        case .getProtocolFeatures:
            reply = LittleEndian.bytes(Self.offeredProtocolFeatures)
        case .setProtocolFeatures:
            let features = try u64Payload(request, payload)
            let unknown = features & ~Self.offeredProtocolFeatures
            guard unknown == 0 else { throw .unofferedFeatures(request: request, bits: unknown) }
            protocolFeatures = features
        case .getQueueNum:
            reply = LittleEndian.bytes(UInt64(queueCount))
        case .setOwner:
            hasOwner = true
        case .resetOwner:
            resetAll()
        case .setMemTable:
            let regions = try VhostUserMemoryRegion.table(payload)
            guard fds.count == regions.count else {
                throw .badFDCount(request: request, expected: regions.count, received: fds.count)
            }
            do {
                memory = try platform.mapMemory(regions, fds: fds)
            } catch {
                throw .mapFailed("\(error)")
            }
            memoryRegions = regions
            if isActive { stopDevice() }
        case .setVringNum:
            let state = try VringState(request, payload)
            let index = try queueIndex(request, state.index)
            device.queues[index].size = UInt16(truncatingIfNeeded: min(state.num, UInt32(UInt16.max)))
        case .setVringAddr:
            let address = try VringAddress(payload)
            let index = try queueIndex(request, address.index)
            device.queues[index].descriptorTable = GuestAddress(try translate(address.descriptor))
            device.queues[index].usedRing = GuestAddress(try translate(address.used))
            device.queues[index].availableRing = GuestAddress(try translate(address.available))
        case .setVringBase:
            let state = try VringState(request, payload)
            let index = try queueIndex(request, state.index)
            let base = UInt16(truncatingIfNeeded: state.num)
            device.queues[index].restore(nextAvailable: base, nextUsed: base)
        case .getVringBase:
            let state = try VringState(request, payload)
            let index = try queueIndex(request, state.index)
            if isActive { stopDevice() }
            rings[index].started = false
            device.queues[index].isReady = false
            reply = VringState(index: state.index, num: UInt32(device.queues[index].nextAvailable)).bytes
        case .setVringKick, .setVringCall, .setVringErr:
            let word = try u64Payload(request, payload)
            let index = try queueIndex(request, UInt32(word & 0xff))
            let noFD = word & 0x100 != 0
            guard fds.count == (noFD ? 0 : 1) else {
                throw .badFDCount(request: request, expected: noFD ? 0 : 1, received: fds.count)
            }
            unused = []
            setRingFD(request, index, noFD ? nil : fds[0])
        case .setVringEnable:
            let state = try VringState(request, payload)
            let index = try queueIndex(request, state.index)
            rings[index].enabled = state.num == 1
            if !rings[index].enabled, isActive { stopDevice() }
        case .getConfig, .setConfig:
            var config = try VhostUserConfig(request, payload)
            let space = device.configSpace
            guard UInt64(config.offset) + UInt64(config.size) <= UInt64(space.count) else {
                throw .badConfigRange(offset: config.offset, size: config.size)
            }
            let range = Int(config.offset)..<Int(config.offset + config.size)
            if request == .getConfig {
                config.payload = Array(space[range])
                reply = config.bytes
            } else {
                device.writeConfig(offset: Int(config.offset), bytes: config.payload)
            }
        case .setLogBase, .setLogFD:
            throw .unsupportedRequest(message.request)
        }

        startDeviceIfReady()
        if let reply { return message.reply(reply) }
        if message.needsReply, protocolFeatures & VhostUserFeature.replyAck != 0 {
            return message.reply(LittleEndian.bytes(UInt64(0)))
        }
        return nil
    }

    /// The reply for a request that failed. A GET request always gets an answer (the frontend
    /// blocks on it): zero, or for GET_CONFIG an empty config that the frontend refuses. Other
    /// requests get a REPLY_ACK failure when the frontend asked for one.
    public func reply(to message: VhostUserMessage, error: VhostUserError) -> VhostUserMessage? {
        logger.warning("\(error)")
        switch message.knownRequest {
        case .getFeatures, .getProtocolFeatures, .getQueueNum:
            return message.reply(LittleEndian.bytes(UInt64(0)))
        case .getVringBase:
            return message.reply(Array((message.payload + [0, 0, 0, 0]).prefix(4)) + [0, 0, 0, 0])
        case .getConfig:
            let header = Array((message.payload + Array(repeating: 0, count: 12)).prefix(12))
            return message.reply(Array(header.prefix(4)) + [0, 0, 0, 0] + Array(header[8..<12]))
        default:
            guard message.needsReply, protocolFeatures & VhostUserFeature.replyAck != 0 else { return nil }
            return message.reply(LittleEndian.bytes(UInt64(1)))
        }
    }

    /// The frontend went away: stop the device (it is reset) and close every fd received.
    public func disconnect() { resetAll() }

    // MARK: state

    private func queueIndex(_ request: VhostUserRequest, _ index: UInt32) throws(VhostUserError) -> Int {
        guard index < UInt32(queueCount) else { throw .badQueueIndex(request: request, index: index) }
        return Int(index)
    }

    /// Frontend virtual address → guest physical address, through the memory table.
    private func translate(_ address: UInt64) throws(VhostUserError) -> UInt64 {
        for region in memoryRegions {
            if let guest = region.guestAddress(ofUser: address) { return guest }
        }
        throw .unmappedAddress(address)
    }

    private func setRingFD(_ request: VhostUserRequest, _ index: Int, _ fd: Int32?) {
        switch request {
        case .setVringKick:
            rings[index].kickFD.map(platform.close)
            rings[index].kickFD = fd
            // A ring starts when it gets its kick fd; without protocol features it is enabled too.
            rings[index].started = true
            if negotiatedFeatures & VhostUserFeature.protocolFeatures == 0 {
                rings[index].enabled = true
            }
        case .setVringCall:
            rings[index].callFD.map(platform.close)
            rings[index].callFD = fd
            let line = fd.map(platform.interruptLine)
            interrupt.lines.withLock { $0.call[index] = line }
        default:
            rings[index].errorFD.map(platform.close)
            rings[index].errorFD = fd
            let line = fd.map(platform.interruptLine)
            interrupt.lines.withLock { $0.error[index] = line }
        }
    }

    private func startDeviceIfReady() {
        guard !isActive, let memory, rings.allSatisfy({ $0.started && $0.enabled }) else { return }
        for index in 0..<queueCount {
            device.queues[index].isReady = true
            do {
                try device.queues[index].validate(memory: memory)
            } catch {
                logger.error("vhost-user: queue \(index) not usable: \(error)")
                device.queues[index].isReady = false
                return
            }
        }
        do {
            try device.activate(memory: memory, interrupt: interrupt)
            isActive = true
        } catch {
            logger.error("vhost-user: \(error)")
        }
    }

    private func stopDevice() {
        device.reset()
        isActive = false
    }

    private func resetQueues() {
        // The frontend chooses queue sizes up to the spec's maximum (QEMU's vsock uses 1024).
        device.queues = Array(repeating: Queue(maxSize: SplitQueueLayout.maxQueueSize), count: max(queueCount, device.queues.count))
    }

    private func resetAll() {
        if isActive { stopDevice() }
        for ring in rings { [ring.kickFD, ring.callFD, ring.errorFD].compactMap { $0 }.forEach(platform.close) }
        rings = Array(repeating: Ring(), count: queueCount)
        interrupt.lines.withLock { $0 = VhostUserInterrupt.Lines() }
        resetQueues()
        device.ackedFeatures = 0
        negotiatedFeatures = 0
        protocolFeatures = 0
        memory = nil
        memoryRegions = []
        hasOwner = false
    }
}
