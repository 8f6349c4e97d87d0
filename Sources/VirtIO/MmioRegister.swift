/// Register offsets of the virtio-mmio transport, version 2 (virtio 1.x, 4.2.2).
/// Registers are 32 bits wide and little-endian; the device configuration starts at 0x100.
public enum MmioRegister: UInt64, Sendable, CaseIterable {
    case magicValue = 0x000
    case version = 0x004
    case deviceID = 0x008
    case vendorID = 0x00c
    case deviceFeatures = 0x010
    case deviceFeaturesSelect = 0x014
    case driverFeatures = 0x020
    case driverFeaturesSelect = 0x024
    case queueSelect = 0x030
    case queueNumMax = 0x034
    case queueNum = 0x038
    case queueReady = 0x044
    case queueNotify = 0x050
    case interruptStatus = 0x060
    case interruptACK = 0x064
    case status = 0x070
    case queueDescLow = 0x080
    case queueDescHigh = 0x084
    case queueDriverLow = 0x090
    case queueDriverHigh = 0x094
    case queueDeviceLow = 0x0a0
    case queueDeviceHigh = 0x0a4
    case shmSelect = 0x0ac
    case shmLengthLow = 0x0b0
    case shmLengthHigh = 0x0b4
    case shmBaseLow = 0x0b8
    case shmBaseHigh = 0x0bc
    case configGeneration = 0x0fc

    /// "virt" in little-endian.
    public static let magic: UInt32 = 0x7472_6976
    /// The modern (non-legacy) transport.
    public static let currentVersion: UInt32 = 2
    /// Vendor ID we report ("KS", kata-swift); drivers do not interpret it.
    public static let vendor: UInt32 = 0x0000_534b
    /// Where the device-specific configuration space starts.
    public static let configOffset: UInt64 = 0x100
    /// Size of one device's MMIO window.
    public static let windowSize: UInt64 = 0x1000
}
