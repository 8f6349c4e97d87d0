import Synchronization

/// Why a device interrupts the driver (the bits of the MMIO InterruptStatus register).
public enum InterruptReason: Sendable {
    /// The device added buffers to a used ring.
    case usedBuffer
    /// The configuration space (or DEVICE_NEEDS_RESET) changed.
    case configChange

    public var statusBit: UInt32 {
        switch self {
        case .usedBuffer: 1
        case .configChange: 2
        }
    }
}

/// How a device signals the driver. Given to the device in `activate(memory:interrupt:)`.
public protocol InterruptTrigger: AnyObject, Sendable {
    /// Records `reason` for the driver and raises the device's interrupt.
    func trigger(_ reason: InterruptReason)
    /// The device found the driver's state unusable (a broken queue): it sets
    /// DEVICE_NEEDS_RESET and sends a configuration-change interrupt (spec 2.1.2).
    func signalNeedsReset()
}

/// The wire behind an interrupt: an irqfd, KVM_IRQ_LINE, an eventfd to a vhost-user
/// front end, or a counter in tests. Provided by whoever hosts the device.
public protocol InterruptLine: Sendable {
    func signal()
}

/// The interrupt state of one virtio device: the status bits the driver reads and
/// acknowledges, the needs-reset flag and the config generation. Thread-safe: devices
/// trigger from the event loop while vCPUs read and acknowledge through the transport.
public final class VirtioInterrupt: InterruptTrigger {
    private let status = Atomic<UInt32>(0)
    private let needsReset = Atomic<Bool>(false)
    private let generation = Atomic<UInt32>(0)
    private let line: any InterruptLine

    public init(line: some InterruptLine) {
        self.line = line
    }

    public func trigger(_ reason: InterruptReason) {
        if reason == .configChange { generation.add(1, ordering: .sequentiallyConsistent) }
        status.bitwiseOr(reason.statusBit, ordering: .sequentiallyConsistent)
        line.signal()
    }

    public func signalNeedsReset() {
        needsReset.store(true, ordering: .sequentiallyConsistent)
        trigger(.configChange)
    }

    /// InterruptStatus.
    public var pending: UInt32 { status.load(ordering: .sequentiallyConsistent) }
    /// Whether DEVICE_NEEDS_RESET is to be shown in Status.
    public var deviceNeedsReset: Bool { needsReset.load(ordering: .sequentiallyConsistent) }
    /// ConfigGeneration: changes whenever the device announces a configuration change.
    public var configGeneration: UInt32 { generation.load(ordering: .sequentiallyConsistent) }

    /// InterruptACK: clears the acknowledged bits.
    public func acknowledge(_ bits: UInt32) {
        status.bitwiseAnd(~bits, ordering: .sequentiallyConsistent)
    }

    /// Sets the state a snapshot saved (MmioTransport.restoreState); raises nothing.
    public func restore(pending: UInt32, needsReset: Bool, generation: UInt32) {
        status.store(pending, ordering: .sequentiallyConsistent)
        self.needsReset.store(needsReset, ordering: .sequentiallyConsistent)
        self.generation.store(generation, ordering: .sequentiallyConsistent)
    }

    /// Device reset: nothing pending, no reset request. The generation keeps counting.
    public func reset() {
        status.store(0, ordering: .sequentiallyConsistent)
        needsReset.store(false, ordering: .sequentiallyConsistent)
    }
}
