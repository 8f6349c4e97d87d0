import GuestMemory
import VirtIO

/// Numbers from the virtio 1.2 specification, section 5.2 (block device), named once.
public enum BlkFeature {
    /// VIRTIO_BLK_F_SEG_MAX: `seg_max` in the configuration is valid.
    public static let segmentMax: UInt64 = 1 << 2
    /// VIRTIO_BLK_F_RO: the device is read-only.
    public static let readOnly: UInt64 = 1 << 5
    /// VIRTIO_BLK_F_BLK_SIZE: `blk_size` in the configuration is valid.
    public static let blockSize: UInt64 = 1 << 6
    /// VIRTIO_BLK_F_FLUSH: cache flush command support (not offered: nothing to flush).
    public static let flush: UInt64 = 1 << 9
}

/// `struct virtio_blk_req`'s `type` field.
public enum BlkRequestType {
    public static let read: UInt32 = 0  // VIRTIO_BLK_T_IN
    public static let write: UInt32 = 1  // VIRTIO_BLK_T_OUT
    public static let flush: UInt32 = 4
    public static let getID: UInt32 = 8
    public static let getLifetime: UInt32 = 10
    public static let discard: UInt32 = 11
    public static let writeZeroes: UInt32 = 13
    public static let secureErase: UInt32 = 14
}

/// The status byte the device writes last.
public enum BlkStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}

/// Why a request was answered with an error status (logged, rate-limited, and counted).
public enum BlkRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    case noWritableStatus
    case headerTooShort(readable: UInt64)
    case unexpectedReadableData(readable: UInt64)
    case lengthNotSectorMultiple(UInt64)
    case tooLarge(UInt64)
    case beyondCapacity(sector: UInt64, sectors: UInt64, capacity: UInt64)
    case readOnly
    case unsupported(type: UInt32)
    case guestMemory(String)
    case backend(String)

    public var description: String {
        switch self {
        case .noWritableStatus: "chain has no device-writable byte for the status"
        case .headerTooShort(let n): "header needs 16 device-readable bytes, chain has \(n)"
        case .unexpectedReadableData(let n): "request carries \(n) device-readable bytes, 16 expected"
        case .lengthNotSectorMultiple(let n): "data length \(n) is not a multiple of 512"
        case .tooLarge(let n): "data length \(n) exceeds the \(BlkRequest.maxDataBytes)-byte limit"
        case .beyondCapacity(let s, let n, let c): "sectors \(s)+\(n) beyond capacity \(c)"
        case .readOnly: "write to a read-only device"
        case .unsupported(let t): "unsupported request type \(t)"
        case .guestMemory(let e): "guest memory: \(e)"
        case .backend(let e): "image read: \(e)"
        }
    }

    /// The status the guest sees: UNSUPP for a type we do not implement, IOERR for the rest
    /// (a write to a read-only device is IOERR, spec 5.2.6.2).
    public var status: BlkStatus {
        if case .unsupported = self { return .unsupported }
        return .ioError
    }
}

/// One request, decoded from a descriptor chain and validated against the device's capacity.
/// Pure: it reads the 16-byte header from guest memory and nothing else, so it can be fuzzed.
///
/// Layout (5.2.6): device-readable `le32 type, le32 reserved, le64 sector`; then the data
/// (device-writable for IN and GET_ID); then one device-writable status byte, the chain's last
/// writable byte. The split into descriptors is the driver's choice (2.6.4: no framing assumed).
public struct BlkRequest: Equatable, Sendable {
    public enum Operation: Equatable, Sendable {
        /// Read `length` bytes (a multiple of 512, within capacity) from sector `sector`.
        case read(sector: UInt64, length: UInt64)
        /// Write the device ID (up to 20 bytes) into the first `length` writable bytes.
        case getID(length: UInt64)
    }

    /// Largest data transfer of one request. Linux asks for at most 1280 KiB unless an
    /// administrator raises max_sectors_kb; a bigger request fails with IOERR instead of having
    /// the device thread read gigabytes for one chain.
    public static let maxDataBytes: UInt64 = 4 << 20
    /// Length of the device ID string returned by GET_ID.
    public static let idLength = 20
    static let headerLength: UInt64 = 16

    public var operation: Operation
    /// Offset of the status byte inside the chain's writable bytes.
    public var statusOffset: UInt64

    /// Decodes `chain`. Returns the request, or the error and, if the chain has a writable
    /// byte, where the status goes (nil: nothing can be reported; return the chain with 0).
    public static func parse(
        _ chain: DescriptorChain, memory: some GuestMemory, capacity: UInt64
    ) -> Result<BlkRequest, Failure> {
        let writable = chain.writableLength
        guard writable >= 1 else { return .failure(Failure(error: .noWritableStatus, statusOffset: nil)) }
        let statusOffset = writable - 1
        func fail(_ error: BlkRequestError) -> Result<BlkRequest, Failure> {
            .failure(Failure(error: error, statusOffset: statusOffset))
        }
        let readable = chain.readableLength
        guard readable >= headerLength else { return fail(.headerTooShort(readable: readable)) }
        let header: [UInt8]
        do {
            header = try chain.read(from: memory, count: Int(headerLength))
        } catch {
            return fail(.guestMemory("\(error)"))
        }
        guard header.count == Int(headerLength) else { return fail(.headerTooShort(readable: UInt64(header.count))) }
        var type: UInt32 = 0
        var sector: UInt64 = 0
        for i in 0..<4 { type |= UInt32(header[i]) << (8 * i) }
        for i in 0..<8 { sector |= UInt64(header[8 + i]) << (8 * i) }
        let dataLength = statusOffset

        switch type {
        case BlkRequestType.read:
            guard readable == headerLength else { return fail(.unexpectedReadableData(readable: readable)) }
            guard dataLength % BlockGeometry.sectorSize == 0 else { return fail(.lengthNotSectorMultiple(dataLength)) }
            guard dataLength <= maxDataBytes else { return fail(.tooLarge(dataLength)) }
            let sectors = dataLength / BlockGeometry.sectorSize
            // Overflow-safe: sector <= capacity first, then compare against what is left.
            guard sector <= capacity, sectors <= capacity - sector else {
                return fail(.beyondCapacity(sector: sector, sectors: sectors, capacity: capacity))
            }
            return .success(BlkRequest(operation: .read(sector: sector, length: dataLength), statusOffset: statusOffset))
        case BlkRequestType.getID:
            guard readable == headerLength else { return fail(.unexpectedReadableData(readable: readable)) }
            let length = min(dataLength, UInt64(idLength))
            return .success(BlkRequest(operation: .getID(length: length), statusOffset: statusOffset))
        case BlkRequestType.write:
            return fail(.readOnly)
        default:
            // FLUSH (not offered), DISCARD, WRITE_ZEROES, SECURE_ERASE (not offered: UNSUPP,
            // 5.2.6.2), GET_LIFETIME and anything unknown.
            return fail(.unsupported(type: type))
        }
    }

    /// A request that cannot be served, and where its status byte goes if anywhere.
    public struct Failure: Error, Equatable, Sendable {
        public var error: BlkRequestError
        public var statusOffset: UInt64?
    }
}
