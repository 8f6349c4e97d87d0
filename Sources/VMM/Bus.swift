// VMM: builds and runs a VM: memory, vCPU threads, devices, exit dispatch, stop.
import Devices
import Synchronization

/// Errors of the VMM; each case names the operation.
public enum BusError: Error, Equatable, Sendable, CustomStringConvertible {
    case overlap(base: UInt64, length: UInt64)
    case emptyRange(base: UInt64)

    public var description: String {
        switch self {
        case .overlap(let b, let n): "bus range 0x\(String(b, radix: 16))+\(n) overlaps a registered device"
        case .emptyRange(let b): "bus range at 0x\(String(b, radix: 16)) has length 0"
        }
    }
}

/// An address space of devices (port I/O or MMIO): non-overlapping windows, looked up per access.
public final class Bus: Sendable {
    struct Entry {
        var base: UInt64
        var length: UInt64
        var device: any BusDevice
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    /// Registers `device` for [base, base+length).
    public func register(_ device: any BusDevice, base: UInt64, length: UInt64) throws(BusError) {
        guard length > 0 else { throw .emptyRange(base: base) }
        let (end, overflow) = base.addingReportingOverflow(length)
        guard !overflow else { throw .overlap(base: base, length: length) }
        try entries.withLock { (list) throws(BusError) in
            for e in list where base < e.base + e.length && e.base < end {
                throw .overlap(base: base, length: length)
            }
            list.append(Entry(base: base, length: length, device: device))
            list.sort { $0.base < $1.base }
        }
    }

    /// The device whose window holds all of [address, address+size), and the offset into it.
    public func resolve(_ address: UInt64, size: Int) -> (device: any BusDevice, offset: UInt64)? {
        entries.withLock { list in
            for e in list where address >= e.base {
                let offset = address - e.base
                if offset < e.length && UInt64(size) <= e.length - offset { return (e.device, offset) }
            }
            return nil
        }
    }
}
