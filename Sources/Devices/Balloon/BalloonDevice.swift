import GuestMemory
import Logging
import VirtIO

/// virtio-balloon (id 5) for free page reporting only (virtio 1.2, 5.5.6.7): the guest hands us
/// ranges of memory it has freed, we drop the host pages behind them (`GuestMemory.discard`), and
/// the guest's next touch of a range finds zeroed memory. The host never asks the guest to
/// inflate (num_pages stays 0), so the inflate and deflate queues only return what they get.
///
/// Everything the guest sends is checked before use: a reported range must be device-writable,
/// page-aligned, non-empty and wholly inside guest RAM; anything else is skipped (and logged,
/// rate-limited), never discarded in part.
public final class BalloonDevice: VirtioDevice {
    /// VIRTIO_BALLOON_F_FREE_PAGE_REPORTING.
    public static let freePageReporting: UInt64 = 1 << 5
    public static let queueSize: UInt16 = 64
    /// Queue indices: inflate, deflate, then (with free page reporting and no stats or hinting
    /// queue negotiated) the reporting queue.
    public static let inflateQueue = 0, deflateQueue = 1, reportingQueue = 2
    /// The unit of every range: the guest reports whole pages.
    public static let pageSize: UInt64 = 4096

    public let deviceType = VirtioDeviceType.balloon
    public let availableFeatures = VirtioFeature.common | BalloonDevice.freePageReporting
    /// Two queues, or three once the driver accepts free page reporting (a queue the driver
    /// never sets up would fail DRIVER_OK).
    public var ackedFeatures: UInt64 = 0 {
        didSet {
            let count = ackedFeatures & Self.freePageReporting != 0 ? 3 : 2
            if queues.count != count { queues = Self.makeQueues(count: count, maxSize: Self.queueSize) }
        }
    }
    public var queues = BalloonDevice.makeQueues(count: 2, maxSize: BalloonDevice.queueSize)
    /// struct virtio_balloon_config: num_pages (0: never inflate), actual (the driver's),
    /// free_page_hint_cmd_id, poison_val; little-endian.
    public private(set) var configSpace = [UInt8](repeating: 0, count: 16)
    /// Bytes given back to the host since creation.
    public private(set) var bytesReported: UInt64 = 0
    /// Ranges refused (not page-aligned, outside RAM, device-readable).
    public private(set) var rangesRefused = 0

    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    private let logger: Logger
    private var guestLog = GuestLogLimiter()

    public init(logger: Logger = Logger(label: "kata-swift.balloon")) {
        self.logger = logger
    }

    /// The driver may write `actual` (bytes 4..<8); num_pages and the rest stay ours.
    public func writeConfig(offset: Int, bytes: [UInt8]) {
        guard offset >= 4, offset + bytes.count <= 8 else { return }
        configSpace.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        guard index < queues.count, let memory else { return }
        let error = serveQueue(index, memory: memory, interrupt: interrupt) { chain in
            if index == Self.reportingQueue { report(chain, memory) }
            // Inflate and deflate: we never asked for pages, so there is nothing to do.
            return 0
        }
        if let error {
            guestLog.log(logger, .error, "balloon queue \(index): \(error)")
            interrupt?.signalNeedsReset()
        }
    }

    /// Discards every valid range of one reporting chain. The driver reports free pages as
    /// device-writable buffers; a device-readable one carries nothing to discard.
    private func report(_ chain: DescriptorChain, _ memory: some GuestMemory) {
        if !chain.readable.isEmpty {
            rangesRefused += chain.readable.count
            guestLog.log(logger, .warning, "balloon: \(chain.readable.count) device-readable range(s) in a report, skipped")
        }
        for buffer in chain.writable {
            let address = buffer.address
            let length = UInt64(buffer.length)
            guard length > 0, address.rawValue % Self.pageSize == 0, length % Self.pageSize == 0,
                memory.contains(address, count: length)
            else {
                rangesRefused += 1
                guestLog.log(logger, .warning, "balloon: reported range \(address)+\(length) is not whole pages of guest RAM, skipped")
                continue
            }
            do {
                try memory.discard(at: address, count: Int(length))
                bytesReported += length
            } catch {
                rangesRefused += 1
                guestLog.log(logger, .error, "balloon: discarding \(address)+\(length): \(error)")
            }
        }
    }

    public func reset() {
        memory = nil
        interrupt = nil
        configSpace.replaceSubrange(4..<8, with: [0, 0, 0, 0])
    }
}

extension BalloonDevice: SnapshotCapableDevice {
    /// The configuration space (the driver's `actual`). Pages reported later on a restored VM
    /// are discarded from a private mapping of the saved file: they read back as the saved
    /// bytes, not zeros, which free page reporting allows (docs/snapshots.md).
    public func savedDeviceState() throws(DeviceStateError) -> [UInt8] { configSpace }

    public func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError) {
        guard bytes.count == configSpace.count else {
            throw DeviceStateError("balloon state of \(bytes.count) bytes, expected \(configSpace.count)")
        }
        // Only `actual` is the driver's; num_pages and the rest stay ours.
        writeConfig(offset: 4, bytes: Array(bytes[4..<8]))
    }
}
