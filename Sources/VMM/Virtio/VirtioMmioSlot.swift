import Devices
import GuestMemory
import Synchronization
import SystemSupport
import VirtIO

/// One virtio-mmio device window on the VM's MMIO bus: the transport and its device behind one
/// lock, an eventfd per queue for QueueNotify (KVM_IOEVENTFD with datamatch = queue index, so
/// kicks never exit to userspace), an eventfd for backend wakes, and the interrupt line.
///
/// vCPU threads only decode registers here (config, status, features, queue setup); device work
/// (queues, backend) runs on the device event loop, under the same lock.
public final class VirtioMmioSlot: BusDevice, @unchecked Sendable {
    // SAFETY (Sendable): `transport` and the device behind it are only used inside `lock`.
    public let base: UInt64
    public let irq: UInt32
    /// QueueNotify doorbells, index = queue index.
    public let queueEvents: [EventFD]
    /// Signalled by the backend when it has work for the device.
    public let wake: EventFD
    /// Polled by the event loop for the backend (see `VirtioDeviceSpec.backendDescriptor`).
    public let backendDescriptor: FileDescriptor?
    private let transport: MmioTransport
    private let backendWork: (() -> Void)?
    private let lock = Mutex(())
    private let queueRuns = Atomic<Int>(0)
    private let trappedKicks = Atomic<Int>(0)

    public init(
        spec: VirtioDeviceSpec, base: UInt64, irq: UInt32, memory: some GuestMemory, interruptLine: some InterruptLine
    ) throws(Errno) {
        self.base = base
        self.irq = irq
        transport = MmioTransport(device: spec.device, memory: memory, interruptLine: interruptLine)
        queueEvents = try (0..<spec.device.queues.count).map { (_) throws(Errno) in try EventFD() }
        wake = try EventFD()
        backendWork = spec.backendWork
        backendDescriptor = spec.backendDescriptor
        let wake = self.wake
        spec.attachBackend? { try? wake.signal() }
    }

    /// The kernel command-line entry announcing this device (virtio_mmio.device=4K@0x...:IRQ).
    public var cmdlineEntry: String { "virtio_mmio.device=4K@0x\(String(base, radix: 16)):\(irq)" }

    /// The address of the QueueNotify register (for KVM_IOEVENTFD).
    public var queueNotifyAddress: UInt64 { base + MmioRegister.queueNotify.rawValue }

    /// The Status register as the driver sees it.
    public var status: DeviceStatus { lock.withLock { _ in transport.status } }
    /// Queue runs done by the event loop (tests: a kick reached the device thread).
    public var queueRunCount: Int { queueRuns.load(ordering: .relaxed) }
    /// QueueNotify stores that exited to userspace instead of signalling the ioeventfd (0 in a VM
    /// whose ioeventfds are registered; tests check it).
    public var trappedKickCount: Int { trappedKicks.load(ordering: .relaxed) }

    // MARK: BusDevice (vCPU threads)

    public func read(offset: UInt64, size: Int) -> [UInt8] {
        lock.withLock { _ in transport.read(offset: offset, count: size) }
    }

    public func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        if offset == MmioRegister.queueNotify.rawValue, data.count == 4 {
            // A kick that KVM did not turn into an eventfd (no ioeventfd, e.g. tests on a bare
            // bus): hand it to the event loop rather than run the device on this vCPU thread.
            let value = data.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            if value < queueEvents.count {
                trappedKicks.add(1, ordering: .relaxed)
                try? queueEvents[value].signal()
                return .done
            }
        }
        let activated = lock.withLock { _ -> Bool in
            let before = transport.isActivated
            transport.write(offset: offset, bytes: data)
            return !before && transport.isActivated
        }
        // The driver just set DRIVER_OK: the backend may already hold work (a host connect
        // made while the guest booted); let the device thread look.
        if activated { try? wake.signal() }
        return .done
    }

    // MARK: snapshots (docs/snapshots.md)

    /// Runs `body` with every slot's lock held, so that no device runs a request meanwhile
    /// (the vCPUs are parked by the caller; the device thread waits at the lock).
    static func withAllLocked(_ slots: ArraySlice<VirtioMmioSlot>, _ body: () throws(VMMError) -> Void) throws(VMMError) {
        guard let first = slots.first else { return try body() }
        try first.lock.withLock { (_) throws(VMMError) in try withAllLocked(slots.dropFirst(), body) }
    }

    /// The device's record (type, transport, device model). Only inside `withAllLocked`.
    func savedRecordLocked() throws(TransportStateError) -> [UInt8] { try transport.savedRecord() }

    /// Sets the saved record back into this fresh slot; then lets the device thread look at
    /// every queue once it starts (chains the guest made available before the save).
    func restore(_ record: [UInt8]) throws(TransportStateError) {
        try lock.withLock { (_) throws(TransportStateError) in try transport.restoreRecord(record) }
        for event in queueEvents { try? event.signal() }
        try? wake.signal()
    }

    // MARK: the device event loop

    /// Runs queue `index` as a QueueNotify would (ignored unless the driver set DRIVER_OK; a
    /// broken queue sets DEVICE_NEEDS_RESET).
    func runQueue(_ index: Int) {
        let value = UInt32(truncatingIfNeeded: index)
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        lock.withLock { _ in transport.write(offset: MmioRegister.queueNotify.rawValue, bytes: bytes) }
        queueRuns.add(1, ordering: .relaxed)
    }

    /// Runs the backend's work once the device is active.
    func runBackend() {
        lock.withLock { _ in
            if transport.isActivated { backendWork?() }
        }
    }
}

/// An interrupt line that writes an eventfd: an irqfd (KVM raises the slot's GSI) in the VM.
public struct EventFDInterruptLine: InterruptLine {
    public let event: EventFD
    public init(_ event: EventFD) { self.event = event }
    public func signal() { try? event.signal() }
}
