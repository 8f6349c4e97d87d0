/// vhost-user requests from the frontend (QEMU) to the backend (us). Numbers from the
/// vhost-user specification (QEMU docs/interop/vhost-user.rst); only those we know are named.
public enum VhostUserRequest: UInt32, Sendable, CaseIterable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFD = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case getConfig = 24
    case setConfig = 25
}

/// Header flags: version in bits 0-1 (always 1), REPLY (bit 2), NEED_REPLY (bit 3).
public enum VhostUserFlag {
    public static let versionMask: UInt32 = 0x3
    public static let version: UInt32 = 0x1
    public static let reply: UInt32 = 0x4
    public static let needReply: UInt32 = 0x8
}

/// Feature and protocol-feature bits of vhost-user itself.
public enum VhostUserFeature {
    /// VHOST_USER_F_PROTOCOL_FEATURES, in the virtio feature word.
    public static let protocolFeatures: UInt64 = 1 << 30
    /// VHOST_USER_PROTOCOL_F_MQ: GET_QUEUE_NUM.
    public static let multiQueue: UInt64 = 1 << 0
    /// VHOST_USER_PROTOCOL_F_REPLY_ACK: NEED_REPLY is honoured.
    public static let replyAck: UInt64 = 1 << 3
    /// VHOST_USER_PROTOCOL_F_CONFIG: GET_CONFIG / SET_CONFIG.
    public static let config: UInt64 = 1 << 9
}

/// Errors of decoding and handling vhost-user messages. None is fatal to the process; the
/// server drops a connection whose framing is broken.
public enum VhostUserError: Error, Equatable, Sendable, CustomStringConvertible {
    /// decode: the version bits are not 1.
    case badVersion(flags: UInt32)
    /// decode: the payload size is above our bound.
    case payloadTooLarge(request: UInt32, size: UInt32)
    /// handle: a request we do not implement.
    case unsupportedRequest(UInt32)
    /// handle: the payload does not have the size its request needs.
    case badPayloadSize(request: VhostUserRequest, size: Int)
    /// handle: a queue index beyond the device's queues.
    case badQueueIndex(request: VhostUserRequest, index: UInt32)
    /// handle: the frontend sent a different number of fds than the request needs.
    case badFDCount(request: VhostUserRequest, expected: Int, received: Int)
    /// handle: SET_FEATURES / SET_PROTOCOL_FEATURES with bits we did not offer.
    case unofferedFeatures(request: VhostUserRequest, bits: UInt64)
    /// handle: too many memory regions, or a malformed region.
    case badMemoryTable(String)
    /// handle: a ring address not inside any memory region.
    case unmappedAddress(UInt64)
    /// handle: a config access outside the device's config space.
    case badConfigRange(offset: UInt32, size: UInt32)
    /// handle: mapping guest memory failed on the platform side.
    case mapFailed(String)

    public var description: String {
        switch self {
        case .badVersion(let f): "vhost-user decode: flags \(f) do not carry version 1"
        case .payloadTooLarge(let r, let s): "vhost-user decode: request \(r) payload \(s) bytes exceeds the bound"
        case .unsupportedRequest(let r): "vhost-user: request \(r) not supported"
        case .badPayloadSize(let r, let s): "vhost-user \(r): payload of \(s) bytes has the wrong size"
        case .badQueueIndex(let r, let i): "vhost-user \(r): no queue \(i)"
        case .badFDCount(let r, let e, let n): "vhost-user \(r): expected \(e) fds, received \(n)"
        case .unofferedFeatures(let r, let b): "vhost-user \(r): bits 0x\(String(b, radix: 16)) were not offered"
        case .badMemoryTable(let why): "vhost-user SET_MEM_TABLE: \(why)"
        case .unmappedAddress(let a): "vhost-user SET_VRING_ADDR: 0x\(String(a, radix: 16)) is in no memory region"
        case .badConfigRange(let o, let s): "vhost-user config: \(s) bytes at \(o) outside the config space"
        case .mapFailed(let why): "vhost-user SET_MEM_TABLE: mapping failed: \(why)"
        }
    }
}

/// One vhost-user message: 12-byte little-endian header (request, flags, size) and payload.
public struct VhostUserMessage: Equatable, Sendable {
    public static let headerSize = 12
    /// Largest payload we accept (SET_MEM_TABLE with 8 regions is 264 bytes; config ≤ 268).
    public static let maxPayload: UInt32 = 4096

    /// Raw request number (unknown numbers are kept so they can be refused politely).
    public var request: UInt32
    public var flags: UInt32
    public var payload: [UInt8]

    public init(request: UInt32, flags: UInt32 = VhostUserFlag.version, payload: [UInt8] = []) {
        self.request = request
        self.flags = flags
        self.payload = payload
    }

    public init(_ request: VhostUserRequest, flags: UInt32 = VhostUserFlag.version, payload: [UInt8] = []) {
        self.init(request: request.rawValue, flags: flags, payload: payload)
    }

    public var knownRequest: VhostUserRequest? { VhostUserRequest(rawValue: request) }
    public var needsReply: Bool { flags & VhostUserFlag.needReply != 0 }

    /// Header and payload, as sent on the socket.
    public var bytes: [UInt8] {
        var out = LittleEndian.bytes(request) + LittleEndian.bytes(flags) + LittleEndian.bytes(UInt32(payload.count))
        out += payload
        return out
    }

    /// The reply to this message carrying `payload`.
    public func reply(_ payload: [UInt8]) -> VhostUserMessage {
        VhostUserMessage(request: request, flags: VhostUserFlag.version | VhostUserFlag.reply, payload: payload)
    }
}

/// Splits a byte stream into messages; bytes may arrive in any chunks.
public struct VhostUserDecoder: Sendable {
    private var buffer: [UInt8] = []

    public init() {}

    public mutating func append(_ bytes: some Collection<UInt8>) {
        buffer += bytes
    }

    /// The next complete message, nil when more bytes are needed. A broken header throws and
    /// the connection must be dropped (its framing cannot be recovered).
    public mutating func next() throws(VhostUserError) -> VhostUserMessage? {
        guard buffer.count >= VhostUserMessage.headerSize else { return nil }
        let request = LittleEndian.load(UInt32.self, buffer, 0)
        let flags = LittleEndian.load(UInt32.self, buffer, 4)
        let size = LittleEndian.load(UInt32.self, buffer, 8)
        guard flags & VhostUserFlag.versionMask == VhostUserFlag.version else { throw .badVersion(flags: flags) }
        guard size <= VhostUserMessage.maxPayload else { throw .payloadTooLarge(request: request, size: size) }
        let total = VhostUserMessage.headerSize + Int(size)
        guard buffer.count >= total else { return nil }
        let payload = Array(buffer[VhostUserMessage.headerSize..<total])
        buffer.removeFirst(total)
        return VhostUserMessage(request: request, flags: flags, payload: payload)
    }
}

/// Little-endian field access for payloads; callers have checked the length.
enum LittleEndian {
    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func load<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(bytes[offset + $1]) << (8 * $1) }
    }
}
