/// A device model whose state a VM snapshot can carry (docs/snapshots.md). The transport saves
/// and restores its own part (queues, status, features); a device adds what only it holds, or
/// refuses to be saved in a state it cannot carry (a vsock connection, a running FUSE session).
/// A device that does not conform is refused by the snapshot with its type named.
public protocol SnapshotCapableDevice: VirtioDevice {
    /// The device's own state beyond the transport's. The device must be quiescent (the vCPUs
    /// parked, its thread between requests).
    func savedDeviceState() throws(DeviceStateError) -> [UInt8]
    /// Sets back `savedDeviceState`'s bytes into a fresh device, before its transport restores.
    /// The bytes come from a file: they are input, checked like a driver's writes.
    func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError)
    /// The restored device is active again and its VM's interrupt controller holds its saved
    /// state: tell the guest what changed underneath it (vsock: every connection is gone).
    func didRestore()
}

extension SnapshotCapableDevice {
    public func didRestore() {}

    /// `restoreDeviceState` for a device whose own record is empty (`name`: how errors call it).
    public func restoreEmptyState(_ bytes: [UInt8], name: String) throws(DeviceStateError) {
        guard bytes.isEmpty else { throw DeviceStateError("\(name) state of \(bytes.count) bytes, expected none") }
    }
}

/// Why a device's state cannot be saved, or a saved state not restored.
public struct DeviceStateError: Error, Equatable, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
