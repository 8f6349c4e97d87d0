import GuestMemory
import Logging
import SystemSupport
import VirtIO

#if canImport(Glibc)
import Glibc
#endif

/// virtio-blk (id 2), read-only, over a file opened read-only (virtio 1.2, 5.2): the guest's root
/// disk (the agent's image, docs/guest-image.md). One request queue; IN reads sectors with
/// pread(2), GET_ID answers the serial, everything that would write fails with IOERR, anything
/// else is UNSUPP.
///
/// Every request is checked before use: a device-readable header of at least 16 bytes, a
/// device-writable status byte (the last writable byte), data a whole number of 512-byte sectors
/// and at most `maxRequestBytes`, and sector + length inside the disk (overflow-safe). A request
/// that fails a check gets IOERR where there is a status byte to say it, and comes back either way.
public final class BlockDevice: VirtioDevice {
    public static let sectorSize: UInt64 = 512
    public static let queueSize: UInt16 = 256
    /// Largest read served at once; Linux splits larger I/O (seg_max and size_max say so).
    public static let maxRequestBytes = 1 << 20
    static let segmentMax: UInt32 = 128
    static let segmentSizeMax: UInt32 = 1 << 16

    /// Feature bits (5.2.3).
    public static let featureSizeMax: UInt64 = 1 << 1
    public static let featureSegMax: UInt64 = 1 << 2
    public static let featureReadOnly: UInt64 = 1 << 5
    public static let featureBlockSize: UInt64 = 1 << 6

    /// Request types and status values (5.2.6).
    enum RequestType: UInt32 {
        case read = 0, write = 1, flush = 4, getID = 8, getLifetime = 10, discard = 11, writeZeroes = 13, secureErase = 14
    }
    static let statusOK: UInt8 = 0, statusIOError: UInt8 = 1, statusUnsupported: UInt8 = 2

    public let deviceType = VirtioDeviceType.block
    public let availableFeatures = VirtioFeature.common | featureSizeMax | featureSegMax | featureReadOnly | featureBlockSize
    public var ackedFeatures: UInt64 = 0
    public var queues = BlockDevice.makeQueues(count: 1, maxSize: BlockDevice.queueSize)
    /// capacity (le64, sectors), size_max, seg_max, geometry (zero), blk_size (le32).
    public let configSpace: [UInt8]
    /// The disk's size in bytes (a whole number of sectors).
    public let capacityBytes: UInt64
    /// Counters: requests served, bytes read, requests refused.
    public private(set) var requests = 0
    public private(set) var bytesRead: UInt64 = 0
    public private(set) var refused = 0

    private let file: FileDescriptor
    private let serial: [UInt8]
    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    private let logger: Logger
    private var guestLog = GuestLogLimiter()

    /// A disk over `file` (read-only; the device never writes to it). `serial` (at most 20
    /// bytes) is what GET_ID answers. Refuses a file whose size is not a whole number of sectors.
    public init(file: FileDescriptor, serial: String = "kata-swift-root", logger: Logger = Logger(label: "kata-swift.block"))
        throws(Errno)
    {
        let size = UInt64(try file.size())
        guard size % Self.sectorSize == 0, size > 0 else { throw Errno(rawValue: EINVAL) }
        self.file = file
        capacityBytes = size
        self.serial = Array(serial.utf8.prefix(20))
        self.logger = logger
        var config = [UInt8]()
        config += withUnsafeBytes(of: (size / Self.sectorSize).littleEndian, Array.init)
        config += withUnsafeBytes(of: Self.segmentSizeMax.littleEndian, Array.init)
        config += withUnsafeBytes(of: Self.segmentMax.littleEndian, Array.init)
        config += [0, 0, 0, 0]  // geometry: not offered
        config += withUnsafeBytes(of: UInt32(Self.sectorSize).littleEndian, Array.init)
        configSpace = config
    }

    /// Opens `path` read-only for a disk.
    public convenience init(path: String, logger: Logger = Logger(label: "kata-swift.block")) throws(Errno) {
        try self.init(file: try FileDescriptor.open(path, O_RDONLY), logger: logger)
    }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        guard index == 0, let memory else { return }
        if let error = serveQueue(0, memory: memory, interrupt: interrupt, { serve($0, memory) }) {
            guestLog.log(logger, .error, "block queue: \(error)")
            interrupt?.signalNeedsReset()
        }
    }

    /// Serves one request; the bytes written into the chain (data and status).
    func serve(_ chain: DescriptorChain, _ memory: some GuestMemory) -> UInt32 {
        requests += 1
        let writable = chain.writableLength
        guard writable >= 1 else {
            refused += 1
            guestLog.log(logger, .warning, "block: request without a device-writable status byte, returned as is")
            return 0
        }
        let dataLength = writable - 1
        let (status, written) = execute(chain, dataLength: dataLength, memory)
        if status != Self.statusOK { refused += 1 }
        do {
            _ = try chain.write([status], to: memory, offset: dataLength)
        } catch {
            guestLog.log(logger, .error, "block: writing the status: \(error)")
            return UInt32(written)
        }
        return UInt32(written + 1)
    }

    /// The request's status and the data bytes it wrote.
    private func execute(_ chain: DescriptorChain, dataLength: UInt64, _ memory: some GuestMemory) -> (UInt8, Int) {
        guard chain.readableLength >= 16, let header = try? chain.read(from: memory, count: 16) else {
            guestLog.log(logger, .warning, "block: request header shorter than 16 bytes")
            return (Self.statusIOError, 0)
        }
        let type = header.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt32.self)) }
        let sector = header.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        switch RequestType(rawValue: type) {
        case .read:
            return read(chain, sector: sector, count: dataLength, memory)
        case .getID:
            let id = serial + [UInt8](repeating: 0, count: 20 - serial.count)
            let n = Int(min(dataLength, 20))
            guard let written = try? chain.write(Array(id.prefix(n)), to: memory) else { return (Self.statusIOError, 0) }
            return (Self.statusOK, written)
        case .flush:
            return (Self.statusOK, 0)  // nothing is ever written, so nothing is pending
        case .write, .discard, .writeZeroes, .secureErase:
            guestLog.log(logger, .warning, "block: write request (type \(type)) on a read-only disk")
            return (Self.statusIOError, 0)
        case .getLifetime, nil:
            return (Self.statusUnsupported, 0)
        }
    }

    private func read(_ chain: DescriptorChain, sector: UInt64, count: UInt64, _ memory: some GuestMemory) -> (UInt8, Int) {
        guard count % Self.sectorSize == 0, count <= UInt64(Self.maxRequestBytes) else {
            guestLog.log(logger, .warning, "block: read of \(count) bytes is not whole sectors of at most \(Self.maxRequestBytes)")
            return (Self.statusIOError, 0)
        }
        let (offset, overflow) = sector.multipliedReportingOverflow(by: Self.sectorSize)
        guard !overflow, offset <= capacityBytes, count <= capacityBytes - offset else {
            guestLog.log(logger, .warning, "block: read of \(count) bytes at sector \(sector) is past the end of the disk")
            return (Self.statusIOError, 0)
        }
        guard count > 0 else { return (Self.statusOK, 0) }
        do {
            let data = try file.read(count: Int(count), at: Int(offset))
            guard data.count == Int(count) else { return (Self.statusIOError, 0) }
            let written = try chain.write(data, to: memory)
            bytesRead += UInt64(written)
            return (Self.statusOK, written)
        } catch {
            guestLog.log(logger, .error, "block: reading \(count) bytes at \(offset): \(error)")
            return (Self.statusIOError, 0)
        }
    }

    public func reset() {
        memory = nil
        interrupt = nil
    }
}
