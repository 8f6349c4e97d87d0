/// virtio-vsock packet operations (virtio 1.2, 5.10.6).
public enum VsockOp: UInt16, Sendable, CaseIterable {
    case request = 1
    case response = 2
    case reset = 3
    case shutdown = 4
    case readWrite = 5
    case creditUpdate = 6
    case creditRequest = 7
}

/// VIRTIO_VSOCK_SHUTDOWN_F_* flags of a SHUTDOWN packet.
public struct VsockShutdown: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The sender will receive no more data.
    public static let receive = VsockShutdown(rawValue: 1)
    /// The sender will send no more data.
    public static let send = VsockShutdown(rawValue: 2)
    public static let both: VsockShutdown = [.receive, .send]
}

/// The 44-byte little-endian header of every vsock packet.
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44
    /// VIRTIO_VSOCK_TYPE_STREAM, the only socket type we serve.
    public static let typeStream: UInt16 = 1
    /// The host's CID (VMADDR_CID_HOST).
    public static let hostCID: UInt64 = 2

    public var sourceCID: UInt64
    public var destinationCID: UInt64
    public var sourcePort: UInt32
    public var destinationPort: UInt32
    /// Payload bytes that follow the header.
    public var length: UInt32
    public var type: UInt16
    /// Raw op; `VsockOp(rawValue:)` is nil for an op a guest made up.
    public var op: UInt16
    public var flags: UInt32
    /// Receive buffer space of the sender, for credit-based flow control.
    public var bufferAllocation: UInt32
    /// Bytes the sender has consumed from its receive buffer (free-running).
    public var forwardCount: UInt32

    public init(
        sourceCID: UInt64, destinationCID: UInt64, sourcePort: UInt32, destinationPort: UInt32,
        length: UInt32 = 0, type: UInt16 = VsockHeader.typeStream, op: VsockOp, flags: UInt32 = 0,
        bufferAllocation: UInt32 = 0, forwardCount: UInt32 = 0
    ) {
        self.sourceCID = sourceCID
        self.destinationCID = destinationCID
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.type = type
        self.op = op.rawValue
        self.flags = flags
        self.bufferAllocation = bufferAllocation
        self.forwardCount = forwardCount
    }

    /// Decodes the first 44 bytes of `bytes`; nil when there are fewer.
    public init?(bytes: [UInt8]) {
        guard bytes.count >= VsockHeader.size else { return nil }
        func field<T: FixedWidthInteger>(_ start: Int) -> T {
            (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(bytes[start + $1]) << (8 * $1) }
        }
        sourceCID = field(0)
        destinationCID = field(8)
        sourcePort = field(16)
        destinationPort = field(20)
        length = field(24)
        type = field(28)
        op = field(30)
        flags = field(32)
        bufferAllocation = field(36)
        forwardCount = field(40)
    }

    /// The 44 wire bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(VsockHeader.size)
        func put<T: FixedWidthInteger>(_ value: T) {
            for i in 0..<MemoryLayout<T>.size { out.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
        }
        put(sourceCID)
        put(destinationCID)
        put(sourcePort)
        put(destinationPort)
        put(length)
        put(type)
        put(op)
        put(flags)
        put(bufferAllocation)
        put(forwardCount)
        return out
    }

    public var operation: VsockOp? { VsockOp(rawValue: op) }
}

/// A header with its payload (RW packets carry data; others carry none).
public struct VsockPacket: Equatable, Sendable {
    public var header: VsockHeader
    public var payload: [UInt8]

    public init(header: VsockHeader, payload: [UInt8] = []) {
        self.header = header
        self.payload = payload
        self.header.length = UInt32(payload.count)
    }
}
