// The virtio-mmio transport's state for a snapshot (docs/snapshots.md): status, features, the
// selectors, the interrupt state and each queue's configuration and ring positions. What the
// device model itself holds is its own record. Restored bytes are input: the queue sizes and
// ring addresses are checked as if the driver had written them.
import GuestMemory
import SystemSupport

public enum TransportStateError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case queue(index: Int, QueueError)
    case notFresh
    case brokenQueue(index: Int)
    case activate(VirtioDeviceError)
    case device(VirtioDeviceType, DeviceStateError)

    public var description: String {
        switch self {
        case .malformed(let why): "virtio-mmio state: \(why)"
        case .queue(let index, let e): "virtio-mmio state: queue \(index): \(e)"
        case .notFresh: "virtio-mmio state: restore needs a transport the driver has not touched"
        case .brokenQueue(let index): "virtio-mmio state: queue \(index) is broken; a broken device is not saved"
        case .activate(let e): "virtio-mmio state: \(e)"
        case .device(let type, let e): "virtio-\(type) state: \(e)"
        }
    }
}

extension MmioTransport {
    static let stateVersion: UInt8 = 1
    static let queueStateSize = 2 + 1 + 8 * 3 + 2 * 2 + 1 + 1

    /// The transport's state, little-endian. The device must be quiescent (its thread between
    /// requests, the vCPUs paused).
    public func savedState() throws(TransportStateError) -> [UInt8] {
        if let broken = device.queues.firstIndex(where: \.isBroken) { throw .brokenQueue(index: broken) }
        var out = LittleEndianWriter()
        out.append(Self.stateVersion)
        out.append(driverStatus.rawValue)
        out.append(driverFeatures)
        out.append(deviceFeaturesSelect)
        out.append(driverFeaturesSelect)
        out.append(queueSelect)
        out.append(shmSelect)
        out.append(UInt8(isActivated ? 1 : 0))
        out.append(interrupt.pending)
        out.append(UInt8(interrupt.deviceNeedsReset ? 1 : 0))
        out.append(interrupt.configGeneration)
        out.append(UInt32(device.queues.count))
        for queue in device.queues {
            out.append(queue.size)
            out.append(UInt8(queue.isReady ? 1 : 0))
            out.append(queue.descriptorTable.rawValue)
            out.append(queue.availableRing.rawValue)
            out.append(queue.usedRing.rawValue)
            out.append(queue.nextAvailable)
            out.append(queue.nextUsed)
            out.append(UInt8(queue.eventIndexEnabled ? 1 : 0))
            out.append(UInt8(queue.indirectEnabled ? 1 : 0))
        }
        return out.bytes
    }

    /// Sets back what `savedState` returned, into a fresh transport (the driver has not
    /// touched it) over a device of the same kind; an activated device is activated again.
    public func restoreState(_ bytes: [UInt8]) throws(TransportStateError) {
        guard driverStatus.isEmpty, !isActivated else { throw .notFresh }
        var input = StateInput(bytes[...])
        guard try input.u8() == Self.stateVersion else { throw .malformed("unknown version") }
        let status = DeviceStatus(rawValue: try input.u32())
        let features = try input.u64()
        let selectors = (try input.u32(), try input.u32(), try input.u32(), try input.u32())
        let activated = try input.u8() != 0
        let pending = try input.u32()
        let needsReset = try input.u8() != 0
        let generation = try input.u32()
        let queueCount = Int(try input.u32())
        guard features & ~device.availableFeatures == 0 else { throw .malformed("features the device does not offer") }
        // Before the queues: a device may size its queues by the features (the balloon's
        // reporting queue).
        device.ackedFeatures = status.contains(.featuresOK) ? features : 0
        guard queueCount == device.queues.count else {
            throw .malformed("\(queueCount) queues saved, the device has \(device.queues.count)")
        }
        guard input.remaining == queueCount * Self.queueStateSize else { throw .malformed("\(bytes.count) bytes") }
        var queues = device.queues
        for index in queues.indices {
            var queue = Queue(maxSize: queues[index].maxSize)
            queue.size = try input.u16()
            queue.isReady = try input.u8() != 0
            queue.descriptorTable = GuestAddress(try input.u64())
            queue.availableRing = GuestAddress(try input.u64())
            queue.usedRing = GuestAddress(try input.u64())
            queue.restore(nextAvailable: try input.u16(), nextUsed: try input.u16())
            queue.eventIndexEnabled = try input.u8() != 0
            queue.indirectEnabled = try input.u8() != 0
            if activated && !queue.isReady { throw .queue(index: index, .notReady) }
            if queue.isReady {
                do throws(QueueError) { try queue.validate(memory: memory) } catch { throw .queue(index: index, error) }
            }
            queues[index] = queue
        }
        device.queues = queues
        driverStatus = status
        driverFeatures = features
        (deviceFeaturesSelect, driverFeaturesSelect, queueSelect, shmSelect) = selectors
        interrupt.restore(pending: pending, needsReset: needsReset, generation: generation)
        if activated {
            do throws(VirtioDeviceError) {
                try device.activate(memory: memory, interrupt: interrupt)
            } catch {
                throw .activate(error)
            }
            isActivated = true
        }
    }
}

extension MmioTransport {
    /// One device's whole record in a snapshot: its type, the transport's state and the device
    /// model's own (`SnapshotCapableDevice`). A device that cannot be saved throws with why.
    public func savedRecord() throws(TransportStateError) -> [UInt8] {
        guard let capable = device as? any SnapshotCapableDevice else {
            throw .device(device.deviceType, DeviceStateError("this device model cannot be saved"))
        }
        let own: [UInt8]
        do throws(DeviceStateError) { own = try capable.savedDeviceState() } catch { throw .device(device.deviceType, error) }
        let transport = try savedState()
        var out = LittleEndianWriter()
        out.append(device.deviceType.rawValue)
        out.append(UInt32(transport.count))
        return out.bytes + transport + own
    }

    /// Sets back a `savedRecord` into a fresh transport over a fresh device of the same type:
    /// the device's own state first, then the transport's (which re-activates it), then the
    /// device's `didRestore`. Call it once the VM's interrupt controller is restored.
    public func restoreRecord(_ bytes: [UInt8]) throws(TransportStateError) {
        guard let capable = device as? any SnapshotCapableDevice else {
            throw .device(device.deviceType, DeviceStateError("this device model cannot be restored"))
        }
        var input = StateInput(bytes[...])
        let type = VirtioDeviceType(rawValue: try input.u32())
        guard type == device.deviceType else { throw .malformed("a virtio-\(type) record for a virtio-\(device.deviceType) device") }
        let length = Int(try input.u32())
        guard length <= input.remaining else { throw .malformed("transport state of \(length) bytes, \(input.remaining) left") }
        let transport = Array(bytes[(8)..<(8 + length)])
        let own = Array(bytes[(8 + length)...])
        do throws(DeviceStateError) { try capable.restoreDeviceState(own) } catch { throw .device(device.deviceType, error) }
        try restoreState(transport)
        capable.didRestore()
    }
}

/// The little-endian reader, with a short input named as a malformed state.
private struct StateInput {
    private var reader: LittleEndianReader
    init(_ bytes: ArraySlice<UInt8>) { reader = LittleEndianReader(bytes) }
    var remaining: Int { reader.remaining }

    mutating func take<T: FixedWidthInteger>(_ type: T.Type) throws(TransportStateError) -> T {
        guard let value = reader.read(type) else { throw .malformed("cut short") }
        return value
    }

    mutating func u8() throws(TransportStateError) -> UInt8 { try take(UInt8.self) }
    mutating func u16() throws(TransportStateError) -> UInt16 { try take(UInt16.self) }
    mutating func u32() throws(TransportStateError) -> UInt32 { try take(UInt32.self) }
    mutating func u64() throws(TransportStateError) -> UInt64 { try take(UInt64.self) }
}
