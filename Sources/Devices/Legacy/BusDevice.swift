/// A device on the port-I/O or MMIO bus of the VMM: the vCPU thread calls it on each access.
///
/// `offset` is relative to the base the device is registered at; the bus has already checked
/// that [offset, offset+size) lies inside the device's window.
public protocol BusDevice: AnyObject, Sendable {
    /// Answers a guest load of `size` bytes (1, 2, 4 or 8).
    func read(offset: UInt64, size: Int) -> [UInt8]
    /// Handles a guest store. The result tells the VMM whether the guest asked for a reset.
    func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome
}

/// What a device write asks of the VMM beyond the write itself.
public enum BusWriteOutcome: Equatable, Sendable {
    case done
    /// The guest requested a system reset (i8042 pulse, reset register): the VMM stops the VM.
    case resetRequested
}
