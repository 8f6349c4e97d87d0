import GuestMemory

/// Why a device could not be activated.
public enum VirtioDeviceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A queue the device needs is not ready or its configuration is invalid.
    case queueNotUsable(index: Int, QueueError)
    /// The device has no backend to serve it (e.g. a vsock backend that was closed).
    case backendUnavailable(String)

    public var description: String {
        switch self {
        case .queueNotUsable(let i, let e): "activate: queue \(i) not usable: \(e)"
        case .backendUnavailable(let what): "activate: backend unavailable: \(what)"
        }
    }
}

/// A virtio device model, independent of transport (virtio-mmio in our VMM, vhost-user for QEMU) and of KVM.
///
/// The device supplies its type, features, queues and configuration bytes; the transport does
/// the register decode, the feature handshake and queue setup once for every device, then calls
/// `activate` when the driver sets DRIVER_OK. A device is not thread-safe: its host serialises
/// all calls (the VMM's per-device lock, or the vhost-user backend's thread).
public protocol VirtioDevice: AnyObject {
    var deviceType: VirtioDeviceType { get }
    /// Features the device offers, including transport bits (`VirtioFeature.common`).
    var availableFeatures: UInt64 { get }
    /// Features the driver accepted; set by the transport at FEATURES_OK.
    var ackedFeatures: UInt64 { get set }
    /// The device's queues, configured by the transport, used by the device once active.
    var queues: [Queue] { get set }
    /// The device-specific configuration space, little-endian, as the driver reads it.
    var configSpace: [UInt8] { get }
    /// A driver write into the configuration space, already bounds-checked against `configSpace`.
    func writeConfig(offset: Int, bytes: [UInt8])
    /// The driver set DRIVER_OK: the queues are ready and validated; start serving them.
    func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError)
    /// The driver kicked queue `index` (QueueNotify or an ioeventfd).
    func queueNotified(_ index: Int)
    /// Device reset (status 0): drop all device state; the transport resets queues and features.
    func reset()
}

extension VirtioDevice {
    /// Configuration is read-only unless a device says otherwise.
    public func writeConfig(offset: Int, bytes: [UInt8]) {}

    /// Whether the driver accepted `feature`.
    public func hasAcked(_ feature: UInt64) -> Bool { ackedFeatures & feature == feature }

    /// Sets up `queues` to `count` queues of `maxSize` entries each.
    public static func makeQueues(count: Int, maxSize: UInt16) -> [Queue] {
        Array(repeating: Queue(maxSize: maxSize), count: count)
    }
}
