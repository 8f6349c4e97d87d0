import GuestMemory
import Logging

/// The virtio-mmio transport (modern, version 2) for any `VirtioDevice`: the register decode,
/// the status handshake and queue setup, written once for every device.
///
/// Maps reads and writes of the device's 4 KiB window (offsets relative to its base). Bad
/// accesses (wrong width, unknown offset, a write the current state does not allow) are
/// ignored, logged and counted in `ignoredAccesses`; none traps. Not thread-safe: the bus
/// serialises accesses to one device, and the device's event-loop work takes the same lock.
public final class MmioTransport {
    public let device: any VirtioDevice
    public let interrupt: VirtioInterrupt
    private let logger: Logger

    // Internal, not private: MmioTransport+Snapshot saves and restores them.
    let memory: any GuestMemory
    var driverStatus: DeviceStatus = []
    var deviceFeaturesSelect: UInt32 = 0
    var driverFeaturesSelect: UInt32 = 0
    var driverFeatures: UInt64 = 0
    var queueSelect: UInt32 = 0
    var shmSelect: UInt32 = 0
    /// Whether `device.activate` succeeded since the last reset.
    public internal(set) var isActivated = false
    /// Accesses ignored as invalid since creation (for tests and diagnostics).
    public private(set) var ignoredAccesses = 0

    public init(
        device: any VirtioDevice, memory: some GuestMemory, interruptLine: some InterruptLine,
        logger: Logger = Logger(label: "kata-swift.virtio-mmio")
    ) {
        self.device = device
        self.memory = memory
        self.interrupt = VirtioInterrupt(line: interruptLine)
        var logger = logger
        logger[metadataKey: "device"] = "\(device.deviceType)"
        self.logger = logger
    }

    /// The Status register as the driver sees it.
    public var status: DeviceStatus {
        interrupt.deviceNeedsReset ? driverStatus.union(.deviceNeedsReset) : driverStatus
    }

    // MARK: reads

    /// A read of `count` bytes at `offset` in the window. Invalid reads return zeros.
    public func read(offset: UInt64, count: Int) -> [UInt8] {
        if offset >= MmioRegister.configOffset {
            return readConfig(offset: offset - MmioRegister.configOffset, count: count)
        }
        guard count == 4, let register = MmioRegister(rawValue: offset), let value = readRegister(register) else {
            return ignored("read of \(count) bytes at \(hex(offset))", zeros: count)
        }
        return littleEndianBytes(value)
    }

    private func readRegister(_ register: MmioRegister) -> UInt32? {
        switch register {
        case .magicValue: MmioRegister.magic
        case .version: MmioRegister.currentVersion
        case .deviceID: device.deviceType.rawValue
        case .vendorID: MmioRegister.vendor
        case .deviceFeatures:
            switch deviceFeaturesSelect {
            case 0: UInt32(truncatingIfNeeded: device.availableFeatures)
            case 1: UInt32(truncatingIfNeeded: device.availableFeatures >> 32)
            default: 0
            }
        case .queueNumMax: selectedQueue.map { UInt32($0.maxSize) } ?? 0
        case .queueReady: selectedQueue.map { $0.isReady ? 1 : 0 } ?? 0
        case .interruptStatus: interrupt.pending
        case .status: status.rawValue
        case .configGeneration: interrupt.configGeneration
        // No shared memory regions: a length and base of -1 mean "no such region".
        case .shmLengthLow, .shmLengthHigh, .shmBaseLow, .shmBaseHigh: UInt32.max
        default: nil
        }
    }

    private func readConfig(offset: UInt64, count: Int) -> [UInt8] {
        let config = device.configSpace
        guard [1, 2, 4, 8].contains(count), offset <= UInt64(config.count),
            UInt64(count) <= UInt64(config.count) - offset
        else {
            return ignored("config read of \(count) bytes at \(hex(offset))", zeros: max(count, 0))
        }
        let start = Int(offset)
        return Array(config[start..<(start + count)])
    }

    // MARK: writes

    /// A write of `bytes` at `offset` in the window. Invalid writes are ignored.
    public func write(offset: UInt64, bytes: [UInt8]) {
        if offset >= MmioRegister.configOffset {
            return writeConfig(offset: offset - MmioRegister.configOffset, bytes: bytes)
        }
        guard bytes.count == 4, let register = MmioRegister(rawValue: offset) else {
            return ignore("write of \(bytes.count) bytes at \(hex(offset))")
        }
        let value = bytes.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
        writeRegister(register, value)
    }

    private func writeRegister(_ register: MmioRegister, _ value: UInt32) {
        switch register {
        case .deviceFeaturesSelect: deviceFeaturesSelect = value
        case .driverFeaturesSelect: driverFeaturesSelect = value
        case .driverFeatures: writeDriverFeatures(value)
        case .queueSelect: queueSelect = value
        case .queueNum: configureQueue(register) { $0.size = UInt16(truncatingIfNeeded: value) }
        case .queueReady: configureQueue(register, allowWhenReady: true) { $0.isReady = value == 1 }
        case .queueDescLow: configureQueue(register) { $0.descriptorTable = setLow($0.descriptorTable, value) }
        case .queueDescHigh: configureQueue(register) { $0.descriptorTable = setHigh($0.descriptorTable, value) }
        case .queueDriverLow: configureQueue(register) { $0.availableRing = setLow($0.availableRing, value) }
        case .queueDriverHigh: configureQueue(register) { $0.availableRing = setHigh($0.availableRing, value) }
        case .queueDeviceLow: configureQueue(register) { $0.usedRing = setLow($0.usedRing, value) }
        case .queueDeviceHigh: configureQueue(register) { $0.usedRing = setHigh($0.usedRing, value) }
        case .queueNotify: notify(queue: value)
        case .interruptACK: interrupt.acknowledge(value)
        case .status: writeStatus(DeviceStatus(rawValue: value))
        case .shmSelect: shmSelect = value
        default: ignore("write to read-only register \(register)")
        }
    }

    private func writeConfig(offset: UInt64, bytes: [UInt8]) {
        let size = UInt64(device.configSpace.count)
        guard [1, 2, 4, 8].contains(bytes.count), offset <= size, UInt64(bytes.count) <= size - offset else {
            return ignore("config write of \(bytes.count) bytes at \(hex(offset))")
        }
        device.writeConfig(offset: Int(offset), bytes: bytes)
    }

    private func writeDriverFeatures(_ value: UInt32) {
        guard driverStatus.contains(.driver), !driverStatus.contains(.featuresOK) else {
            return ignore("DriverFeatures written in status \(hex(UInt64(driverStatus.rawValue)))")
        }
        switch driverFeaturesSelect {
        case 0: driverFeatures = driverFeatures & 0xffff_ffff_0000_0000 | UInt64(value)
        case 1: driverFeatures = driverFeatures & 0x0000_0000_ffff_ffff | UInt64(value) << 32
        default: ignore("DriverFeatures with select \(driverFeaturesSelect)")
        }
    }

    private var selectedQueue: Queue? {
        Int(exactly: queueSelect).flatMap { $0 < device.queues.count ? device.queues[$0] : nil }
    }

    /// Queue registers may change only between FEATURES_OK and DRIVER_OK, on an existing
    /// queue, and (except QueueReady itself) while that queue is not ready.
    private func configureQueue(_ register: MmioRegister, allowWhenReady: Bool = false, _ change: (inout Queue) -> Void) {
        guard driverStatus.contains(.featuresOK), !driverStatus.contains(.driverOK) else {
            return ignore("\(register) written in status \(hex(UInt64(driverStatus.rawValue)))")
        }
        guard let index = Int(exactly: queueSelect), index < device.queues.count else {
            return ignore("\(register) for missing queue \(queueSelect)")
        }
        guard allowWhenReady || !device.queues[index].isReady else {
            return ignore("\(register) for queue \(index) while it is ready")
        }
        change(&device.queues[index])
    }

    private func notify(queue value: UInt32) {
        guard isActivated, let index = Int(exactly: value), index < device.queues.count else {
            return ignore("QueueNotify(\(value)) while \(isActivated ? "active" : "inactive")")
        }
        device.queueNotified(index)
        if let broken = device.queues.first(where: \.isBroken), !interrupt.deviceNeedsReset {
            logger.warning("virtqueue broken: \(broken.brokenReason.map { "\($0)" } ?? "")")
            interrupt.signalNeedsReset()
        }
    }
}

// MARK: status handshake and reset

extension MmioTransport {
    /// Status writes: 0 resets; otherwise bits are only added, one step at a time, in the order
    /// ACKNOWLEDGE, DRIVER, FEATURES_OK (refused unless the accepted features are offered ones
    /// including VERSION_1), DRIVER_OK (activates the device). FAILED may be set at any time.
    private func writeStatus(_ requested: DeviceStatus) {
        if requested.isEmpty { return reset() }
        let wanted = requested.subtracting(.deviceNeedsReset)
        guard wanted.isSuperset(of: driverStatus) else {
            return ignore("Status \(hex(UInt64(requested.rawValue))) clears bits of \(hex(UInt64(driverStatus.rawValue)))")
        }
        var next = driverStatus
        let steps: [(DeviceStatus, DeviceStatus)] = [
            (.acknowledge, []), (.driver, .acknowledge), (.featuresOK, .driver), (.driverOK, .featuresOK),
        ]
        for (bit, requires) in steps where wanted.contains(bit) && !next.contains(bit) {
            guard next.contains(requires) else {
                return ignore("Status bit \(hex(UInt64(bit.rawValue))) before \(hex(UInt64(requires.rawValue)))")
            }
            if bit == .featuresOK, !acceptFeatures() { break }
            next.insert(bit)
            if bit == .driverOK { activate() }
        }
        if wanted.contains(.failed) { next.insert(.failed) }
        driverStatus = next
    }

    /// FEATURES_OK: the device keeps the bit clear (refuses) when the driver accepted
    /// features the device did not offer, or did not accept VERSION_1.
    private func acceptFeatures() -> Bool {
        let unknown = driverFeatures & ~device.availableFeatures
        guard unknown == 0, driverFeatures & VirtioFeature.version1 != 0 else {
            logger.warning("FEATURES_OK refused: driver features \(hex(driverFeatures)), offered \(hex(device.availableFeatures))")
            return false
        }
        device.ackedFeatures = driverFeatures
        for index in device.queues.indices {
            device.queues[index].eventIndexEnabled = driverFeatures & VirtioFeature.eventIndex != 0
            device.queues[index].indirectEnabled = driverFeatures & VirtioFeature.indirectDescriptors != 0
        }
        return true
    }

    /// DRIVER_OK: every queue must be ready and valid, then the device starts.
    private func activate() {
        for (index, queue) in device.queues.enumerated() {
            do throws(QueueError) {
                guard queue.isReady else { throw .notReady }
                try queue.validate(memory: memory)
            } catch {
                logger.error("DRIVER_OK: queue \(index): \(error)")
                interrupt.signalNeedsReset()
                return
            }
        }
        do {
            try device.activate(memory: memory, interrupt: interrupt)
            isActivated = true
        } catch {
            logger.error("DRIVER_OK: \(error)")
            interrupt.signalNeedsReset()
        }
    }

    /// Status 0: the device forgets the driver; queues, features and interrupts start over.
    public func reset() {
        device.reset()
        for index in device.queues.indices { device.queues[index].reset() }
        device.ackedFeatures = 0
        interrupt.reset()
        driverStatus = []
        deviceFeaturesSelect = 0
        driverFeaturesSelect = 0
        driverFeatures = 0
        queueSelect = 0
        shmSelect = 0
        isActivated = false
    }

    private func ignore(_ what: String) {
        ignoredAccesses += 1
        logger.debug("ignored: \(what)")
    }

    private func ignored(_ what: String, zeros count: Int) -> [UInt8] {
        ignore(what)
        return Array(repeating: 0, count: max(count, 0))
    }
}

private func littleEndianBytes(_ value: UInt32) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

private func setLow(_ address: GuestAddress, _ value: UInt32) -> GuestAddress {
    GuestAddress(address.rawValue & 0xffff_ffff_0000_0000 | UInt64(value))
}

private func setHigh(_ address: GuestAddress, _ value: UInt32) -> GuestAddress {
    GuestAddress(address.rawValue & 0x0000_0000_ffff_ffff | UInt64(value) << 32)
}

private func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
