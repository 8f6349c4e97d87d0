import GuestMemory
import Logging
import SystemSupport
import VirtIO

/// virtio-blk (id 2), read-only: one request queue over a `BlockBackend`.
///
/// Offers VERSION_1, INDIRECT_DESC, EVENT_IDX, RO, BLK_SIZE (512) and SEG_MAX. Serves IN (read)
/// and GET_ID; OUT gets IOERR (read-only, spec 5.2.6.2); FLUSH (not offered), DISCARD,
/// WRITE_ZEROES, SECURE_ERASE, GET_LIFETIME and unknown types get UNSUPP. Every request is
/// validated by `BlkRequest.parse` before anything is read; a malformed one gets IOERR in its
/// status byte when it has one and is returned either way.
public final class BlkDevice: VirtioDevice {
    public static let queueSize: UInt16 = 256
    /// Data segments per request. A request is header + segments + status, and a chain may not
    /// be longer than the queue (2.7.5.3.1): 126 fits the smallest queue we meet, QEMU
    /// vhost-user-blk's default of 128 entries.
    public static let segmentMax: UInt32 = 126
    /// The block size we report. 512, not 4096: the guest's logical block size becomes this
    /// value, and with 4096 a filesystem with 1 KiB or 2 KiB blocks (mke2fs's choice for small
    /// images) would not mount, while 512 serves every block size; capacity is counted in
    /// 512-byte sectors anyway, so any image we accept is a whole number of blocks.
    public static let blockSize: UInt32 = 512
    /// Size of the configuration space: virtio 1.2's whole `struct virtio_blk_config`.
    public static let configSize = 72

    public let deviceType = VirtioDeviceType.block
    public let availableFeatures = VirtioFeature.common | BlkFeature.readOnly | BlkFeature.blockSize | BlkFeature.segmentMax
    public var ackedFeatures: UInt64 = 0
    public var queues = BlkDevice.makeQueues(count: 1, maxSize: BlkDevice.queueSize)
    public let configSpace: [UInt8]
    /// Capacity in 512-byte sectors.
    public let capacity: UInt64

    /// Requests answered OK, and those answered with an error status (or without one).
    public private(set) var requestsServed = 0
    public private(set) var requestsFailed = 0
    /// Bytes read from the image into the guest.
    public private(set) var bytesRead: UInt64 = 0

    private let backend: any BlockBackend
    private let serial: [UInt8]
    private var memory: (any GuestMemory)?
    private var interrupt: (any InterruptTrigger)?
    private let logger: Logger
    /// Every line below is triggered by the guest: rate-limited.
    private var guestLog = GuestLogLimiter()

    /// A device over `backend`. `serial` is what GET_ID returns: its first 20 bytes, NUL-padded.
    public init(backend: any BlockBackend, serial: String = "kata-swift", logger: Logger = Logger(label: "kata-swift.blk")) {
        self.backend = backend
        self.capacity = backend.size / BlockGeometry.sectorSize
        let id = Array(serial.utf8.prefix(BlkRequest.idLength))
        self.serial = id + Array(repeating: 0, count: BlkRequest.idLength - id.count)
        self.logger = logger
        // struct virtio_blk_config (5.2.4): capacity @0, size_max @8, seg_max @12, geometry @16,
        // blk_size @20, then topology, writeback, num_queues, discard, write-zeroes and
        // secure-erase limits up to 72 bytes; little-endian, fields of features we do not offer
        // left zero. The whole struct, because a vhost-user frontend asks for its own idea of the
        // size (QEMU: every field of the features it might offer) and a shorter space is refused.
        var config = [UInt8](repeating: 0, count: Self.configSize)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            for i in 0..<MemoryLayout<T>.size { config[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        put(capacity, at: 0)
        put(Self.segmentMax, at: 12)
        put(Self.blockSize, at: 20)
        self.configSpace = config
    }

    public func activate(memory: some GuestMemory, interrupt: some InterruptTrigger) throws(VirtioDeviceError) {
        self.memory = memory
        self.interrupt = interrupt
    }

    public func queueNotified(_ index: Int) {
        guard index == 0, let memory else { return }
        if let error = serveQueue(0, memory: memory, interrupt: interrupt, { handle($0, memory) }) {
            guestLog.log(logger, .error, "blk queue: \(error)")
            interrupt?.signalNeedsReset()
        }
    }

    public func reset() {
        memory = nil
        interrupt = nil
    }

    /// Serves one chain; returns the bytes written into its writable buffers (data + status).
    func handle(_ chain: DescriptorChain, _ memory: some GuestMemory) -> UInt32 {
        let request: BlkRequest
        switch BlkRequest.parse(chain, memory: memory, capacity: capacity) {
        case .success(let parsed):
            request = parsed
        case .failure(let failure):
            return fail(chain, memory, failure.error, statusOffset: failure.statusOffset)
        }
        let written: UInt64
        do throws(BlkRequestError) {
            written = try perform(request, chain, memory)
        } catch {
            return fail(chain, memory, error, statusOffset: request.statusOffset)
        }
        guard setStatus(.ok, chain, memory, at: request.statusOffset) else {
            requestsFailed += 1
            return 0
        }
        requestsServed += 1
        // written + 1 <= writableLength <= 4 GiB (the queue's chain limit): fits in UInt32.
        return UInt32(truncatingIfNeeded: written + 1)
    }

    /// Does the work of a validated request; returns the data bytes written.
    private func perform(_ request: BlkRequest, _ chain: DescriptorChain, _ memory: some GuestMemory) throws(BlkRequestError) -> UInt64 {
        switch request.operation {
        case .read(let sector, let length):
            var offset = sector * BlockGeometry.sectorSize
            for piece in chain.writablePieces(offset: 0, count: length) {
                do {
                    try memory.withUnsafeMutableBytes(at: piece.address, count: piece.length) { buffer in
                        try backend.read(into: buffer, at: offset)
                    }
                } catch let error as GuestMemoryError {
                    throw .guestMemory("\(error)")
                } catch {
                    throw .backend("\(error)")
                }
                offset += UInt64(piece.length)
            }
            bytesRead += length
            return length
        case .getID(let length):
            do {
                return UInt64(try chain.write(Array(serial.prefix(Int(length))), to: memory))
            } catch {
                throw .guestMemory("\(error)")
            }
        }
    }

    private func fail(_ chain: DescriptorChain, _ memory: some GuestMemory, _ error: BlkRequestError, statusOffset: UInt64?) -> UInt32 {
        requestsFailed += 1
        guestLog.log(logger, .warning, "blk request \(chain.head): \(error)")
        guard let statusOffset, setStatus(error.status, chain, memory, at: statusOffset) else { return 0 }
        return 1
    }

    private func setStatus(_ status: BlkStatus, _ chain: DescriptorChain, _ memory: some GuestMemory, at offset: UInt64) -> Bool {
        (try? chain.write([status.rawValue], to: memory, offset: offset)) == 1
    }
}

extension BlkDevice: SnapshotCapableDevice {
    /// The image's identity: the guest's page cache holds the template's blocks, so a restore
    /// over any other image is refused (requests are answered whole while they are taken).
    public func savedDeviceState() throws(DeviceStateError) -> [UInt8] {
        var out = LittleEndianWriter()
        for value in backend.identity { out.append(value) }
        return out.bytes
    }

    public func restoreDeviceState(_ bytes: [UInt8]) throws(DeviceStateError) {
        guard bytes == (try savedDeviceState()) else {
            throw DeviceStateError("the disk image is not the one the VM was saved with (device, inode, size or modification time differ)")
        }
    }
}
