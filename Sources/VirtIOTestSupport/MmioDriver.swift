import VirtIO

/// A tiny driver for a virtio-mmio window: 32-bit register accesses as Linux's virtio_mmio
/// does, through anything that answers MMIO (a transport here; the VMM's tests add its bus and
/// slots).
public struct MmioDriver {
    /// Reads `size` bytes at `offset` into the window.
    public let load: (UInt64, Int) -> [UInt8]
    /// Writes bytes at `offset` into the window.
    public let store: (UInt64, [UInt8]) -> Void

    public init(load: @escaping (UInt64, Int) -> [UInt8], store: @escaping (UInt64, [UInt8]) -> Void) {
        self.load = load
        self.store = store
    }

    public init(transport: MmioTransport) {
        self.init(load: { transport.read(offset: $0, count: $1) }, store: { transport.write(offset: $0, bytes: $1) })
    }

    public func read(_ register: MmioRegister) -> UInt32 {
        load(register.rawValue, 4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }

    public func write(_ register: MmioRegister, _ value: UInt32) {
        store(register.rawValue, (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
    }

    public var status: DeviceStatus { DeviceStatus(rawValue: read(.status)) }

    public func setStatus(_ bits: DeviceStatus) { write(.status, status.subtracting(.deviceNeedsReset).union(bits).rawValue) }

    public func deviceFeatures() -> UInt64 {
        write(.deviceFeaturesSelect, 0)
        let low = UInt64(read(.deviceFeatures))
        write(.deviceFeaturesSelect, 1)
        return low | UInt64(read(.deviceFeatures)) << 32
    }

    public func acceptFeatures(_ features: UInt64) {
        write(.driverFeaturesSelect, 0)
        write(.driverFeatures, UInt32(truncatingIfNeeded: features))
        write(.driverFeaturesSelect, 1)
        write(.driverFeatures, UInt32(truncatingIfNeeded: features >> 32))
    }

    /// ACKNOWLEDGE, DRIVER, every offered feature, FEATURES_OK, `queues` in order, DRIVER_OK:
    /// Linux's virtio_mmio probe.
    public func initialise(queues: [FakeVirtqueueDriver], features: UInt64? = nil) {
        write(.status, 0)
        setStatus(.acknowledge)
        setStatus(.driver)
        acceptFeatures(features ?? deviceFeatures())
        setStatus(.featuresOK)
        for (index, queue) in queues.enumerated() { setUpQueue(UInt32(index), queue) }
        setStatus(.driverOK)
    }

    public func setUpQueue(_ index: UInt32, _ fake: FakeVirtqueueDriver) {
        write(.queueSelect, index)
        write(.queueNum, UInt32(fake.size))
        write(.queueDescLow, UInt32(truncatingIfNeeded: fake.descriptorTable.rawValue))
        write(.queueDescHigh, UInt32(truncatingIfNeeded: fake.descriptorTable.rawValue >> 32))
        write(.queueDriverLow, UInt32(truncatingIfNeeded: fake.availableRing.rawValue))
        write(.queueDriverHigh, UInt32(truncatingIfNeeded: fake.availableRing.rawValue >> 32))
        write(.queueDeviceLow, UInt32(truncatingIfNeeded: fake.usedRing.rawValue))
        write(.queueDeviceHigh, UInt32(truncatingIfNeeded: fake.usedRing.rawValue >> 32))
        write(.queueReady, 1)
    }
}
