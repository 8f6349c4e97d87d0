// Numbers from the virtio 1.x specification (OASIS virtio v1.1/v1.2), named once.

/// Virtio device IDs (spec section 5).
public struct VirtioDeviceType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let net = VirtioDeviceType(rawValue: 1)
    public static let block = VirtioDeviceType(rawValue: 2)
    public static let console = VirtioDeviceType(rawValue: 3)
    public static let rng = VirtioDeviceType(rawValue: 4)
    public static let balloon = VirtioDeviceType(rawValue: 5)
    public static let vsock = VirtioDeviceType(rawValue: 19)
    public static let fs = VirtioDeviceType(rawValue: 26)

    public var description: String {
        switch self {
        case .net: "net"
        case .block: "block"
        case .console: "console"
        case .rng: "rng"
        case .balloon: "balloon"
        case .vsock: "vsock"
        case .fs: "fs"
        default: "type \(rawValue)"
        }
    }
}

/// Feature bits shared by every device (spec section 6). Device-specific bits are below 24.
public enum VirtioFeature {
    /// VIRTIO_RING_F_INDIRECT_DESC: the driver may use indirect descriptor tables.
    public static let indirectDescriptors: UInt64 = 1 << 28
    /// VIRTIO_RING_F_EVENT_IDX: used_event / avail_event notification suppression.
    public static let eventIndex: UInt64 = 1 << 29
    /// VIRTIO_F_VERSION_1: a modern (non-legacy) device; required by our transport.
    public static let version1: UInt64 = 1 << 32

    /// What every device of ours offers: modern, indirect tables, event index.
    public static let common: UInt64 = version1 | indirectDescriptors | eventIndex
}

/// Device status bits (spec 2.1), written by the driver during initialisation.
public struct DeviceStatus: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let acknowledge = DeviceStatus(rawValue: 1)
    public static let driver = DeviceStatus(rawValue: 2)
    public static let driverOK = DeviceStatus(rawValue: 4)
    public static let featuresOK = DeviceStatus(rawValue: 8)
    public static let deviceNeedsReset = DeviceStatus(rawValue: 0x40)
    public static let failed = DeviceStatus(rawValue: 0x80)
}

/// Split-virtqueue descriptor flags (spec 2.7.5).
public enum DescriptorFlag {
    /// VIRTQ_DESC_F_NEXT: the `next` field continues the chain.
    public static let next: UInt16 = 1
    /// VIRTQ_DESC_F_WRITE: the device writes this buffer (otherwise it reads it).
    public static let write: UInt16 = 2
    /// VIRTQ_DESC_F_INDIRECT: the buffer is a table of descriptors.
    public static let indirect: UInt16 = 4
}

/// Ring flags (spec 2.7.7, 2.7.10).
public enum RingFlag {
    /// VIRTQ_AVAIL_F_NO_INTERRUPT: the driver asks not to be interrupted (without EVENT_IDX).
    public static let availableNoInterrupt: UInt16 = 1
    /// VIRTQ_USED_F_NO_NOTIFY: the device asks not to be kicked (without EVENT_IDX).
    public static let usedNoNotify: UInt16 = 1
}

/// Split-queue layout sizes and bounds.
public enum SplitQueueLayout {
    /// Bytes of one descriptor: addr u64, len u32, flags u16, next u16.
    public static let descriptorSize: UInt64 = 16
    /// Largest queue size the spec allows.
    public static let maxQueueSize: UInt16 = 32768
    /// Bytes of the descriptor table of a queue of `size` entries.
    public static func descriptorTableSize(_ size: UInt16) -> UInt64 { descriptorSize * UInt64(size) }
    /// flags, idx, ring[size], used_event.
    public static func availableRingSize(_ size: UInt16) -> UInt64 { 6 + 2 * UInt64(size) }
    /// flags, idx, ring[size] of (id u32, len u32), avail_event.
    public static func usedRingSize(_ size: UInt16) -> UInt64 { 6 + 8 * UInt64(size) }
}
