/// Payloads of the vhost-user requests we handle, decoded with their sizes checked.

/// struct vhost_vring_state: SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE.
public struct VringState: Equatable, Sendable {
    public var index: UInt32
    public var num: UInt32

    public init(index: UInt32, num: UInt32) {
        self.index = index
        self.num = num
    }

    init(_ request: VhostUserRequest, _ payload: [UInt8]) throws(VhostUserError) {
        guard payload.count == 8 else { throw .badPayloadSize(request: request, size: payload.count) }
        index = LittleEndian.load(UInt32.self, payload, 0)
        num = LittleEndian.load(UInt32.self, payload, 4)
    }

    public var bytes: [UInt8] { LittleEndian.bytes(index) + LittleEndian.bytes(num) }
}

/// struct vhost_vring_addr: ring addresses in the frontend's virtual address space.
public struct VringAddress: Equatable, Sendable {
    public var index: UInt32
    public var flags: UInt32
    public var descriptor: UInt64
    public var used: UInt64
    public var available: UInt64
    public var log: UInt64

    init(_ payload: [UInt8]) throws(VhostUserError) {
        guard payload.count == 40 else { throw .badPayloadSize(request: .setVringAddr, size: payload.count) }
        index = LittleEndian.load(UInt32.self, payload, 0)
        flags = LittleEndian.load(UInt32.self, payload, 4)
        descriptor = LittleEndian.load(UInt64.self, payload, 8)
        used = LittleEndian.load(UInt64.self, payload, 16)
        available = LittleEndian.load(UInt64.self, payload, 24)
        log = LittleEndian.load(UInt64.self, payload, 32)
    }
}

/// One region of SET_MEM_TABLE; its memory arrives as the matching fd.
public struct VhostUserMemoryRegion: Equatable, Sendable {
    public var guestAddress: UInt64
    public var size: UInt64
    /// Where the frontend mapped it (ring addresses are given in this space).
    public var userAddress: UInt64
    /// Offset of the region inside the fd.
    public var mmapOffset: UInt64

    public init(guestAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64) {
        self.guestAddress = guestAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
    }

    /// The guest address of frontend address `address`, if this region holds it.
    func guestAddress(ofUser address: UInt64) -> UInt64? {
        guard address >= userAddress, address - userAddress < size else { return nil }
        return guestAddress + (address - userAddress)
    }

    /// The regions of a SET_MEM_TABLE payload: u32 count, u32 padding, 32 bytes per region.
    static func table(_ payload: [UInt8]) throws(VhostUserError) -> [VhostUserMemoryRegion] {
        guard payload.count >= 8 else { throw .badPayloadSize(request: .setMemTable, size: payload.count) }
        let count = Int(LittleEndian.load(UInt32.self, payload, 0))
        guard count >= 1, count <= maxRegions else { throw .badMemoryTable("\(count) regions (1...\(maxRegions))") }
        guard payload.count >= 8 + 32 * count else { throw .badPayloadSize(request: .setMemTable, size: payload.count) }
        var regions: [VhostUserMemoryRegion] = []
        for i in 0..<count {
            let base = 8 + 32 * i
            let region = VhostUserMemoryRegion(
                guestAddress: LittleEndian.load(UInt64.self, payload, base),
                size: LittleEndian.load(UInt64.self, payload, base + 8),
                userAddress: LittleEndian.load(UInt64.self, payload, base + 16),
                mmapOffset: LittleEndian.load(UInt64.self, payload, base + 24))
            guard region.size > 0,
                region.guestAddress.addingReportingOverflow(region.size).overflow == false,
                region.userAddress.addingReportingOverflow(region.size).overflow == false,
                region.mmapOffset.addingReportingOverflow(region.size).overflow == false
            else { throw .badMemoryTable("region \(i) is empty or overflows") }
            regions.append(region)
        }
        return regions
    }

    /// VHOST_MEMORY_MAX_NREGIONS.
    public static let maxRegions = 8
}

/// struct vhost_user_config: GET_CONFIG / SET_CONFIG.
public struct VhostUserConfig: Equatable, Sendable {
    public static let maxSize: UInt32 = 256
    public var offset: UInt32
    public var size: UInt32
    public var flags: UInt32
    public var payload: [UInt8]

    init(_ request: VhostUserRequest, _ bytes: [UInt8]) throws(VhostUserError) {
        guard bytes.count >= 12 else { throw .badPayloadSize(request: request, size: bytes.count) }
        offset = LittleEndian.load(UInt32.self, bytes, 0)
        size = LittleEndian.load(UInt32.self, bytes, 4)
        flags = LittleEndian.load(UInt32.self, bytes, 8)
        guard size <= Self.maxSize, bytes.count == 12 + Int(size) else {
            throw .badPayloadSize(request: request, size: bytes.count)
        }
        payload = Array(bytes[12...])
    }

    var bytes: [UInt8] {
        LittleEndian.bytes(offset) + LittleEndian.bytes(size) + LittleEndian.bytes(flags) + payload
    }
}

/// A u64 payload (features, queue count, and the index word of SET_VRING_KICK/CALL/ERR).
func u64Payload(_ request: VhostUserRequest, _ payload: [UInt8]) throws(VhostUserError) -> UInt64 {
    guard payload.count == 8 else { throw .badPayloadSize(request: request, size: payload.count) }
    return LittleEndian.load(UInt64.self, payload, 0)
}
