import Devices
import GuestMemory
import VirtIO
import VirtIOTestSupport

/// The guest side of a vsock device for tests: fake drivers on its three queues, sending TX
/// packets and offering RX buffers as Linux's virtio_transport does, and decoding what arrives.
final class VsockTestGuest {
    static let cid: UInt64 = 3
    let memory = HeapGuestMemory(size: 0x100000)
    let rx: FakeVirtqueueDriver
    let tx: FakeVirtqueueDriver
    let event: FakeVirtqueueDriver
    let device: VsockDevice
    let muxer: VsockMuxer
    let interrupt = RecordingInterruptTrigger()
    private var rxChains: [UInt16: FakeVirtqueueDriver.Chain] = [:]

    init(muxer: VsockMuxer = VsockMuxer(), rxIndexStart: UInt16 = 0) throws {
        self.muxer = muxer
        rx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x20000, startIndex: rxIndexStart)
        tx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x30000), dataSize: 0x30000)
        event = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x70000), dataSize: 0x1000)
        device = VsockDevice(guestCID: Self.cid, backend: muxer)
        device.queues = [rx.makeQueue(maxSize: 256), tx.makeQueue(maxSize: 256), event.makeQueue(maxSize: 256)]
        try device.activate(memory: memory, interrupt: interrupt)
    }

    /// A header from the guest's side: guest port `from` to host port `to`.
    func header(_ op: VsockOp, from: UInt32, to: UInt32, flags: UInt32 = 0, bufferAllocation: UInt32 = 0x10000, forwardCount: UInt32 = 0) -> VsockHeader {
        VsockHeader(
            sourceCID: Self.cid, destinationCID: VsockHeader.hostCID, sourcePort: from, destinationPort: to,
            op: op, flags: flags, bufferAllocation: bufferAllocation, forwardCount: forwardCount)
    }

    /// Sends one packet on TX (header and payload in separate descriptors) and kicks.
    func send(_ header: VsockHeader, _ payload: [UInt8] = [], length: UInt32? = nil) throws {
        var header = header
        header.length = length ?? UInt32(payload.count)
        try tx.add(payload.isEmpty ? [.readable(header.bytes)] : [.readable(header.bytes), .readable(payload)])
        device.queueNotified(VsockDevice.QueueIndex.tx.rawValue)
    }

    /// Offers `count` RX buffers of `size` bytes (or split as header + payload) and kicks.
    func offerBuffers(_ count: Int, size: UInt32 = 4096 + 44, split: Bool = false) throws {
        for _ in 0..<count {
            let chain = try rx.add(split ? [.writable(44), .writable(size - 44)] : [.writable(size)])
            rxChains[chain.head] = chain
        }
        device.queueNotified(VsockDevice.QueueIndex.rx.rawValue)
    }

    /// The packets the device delivered since the last call (offers buffers first if asked).
    func receive() throws -> [VsockPacket] {
        try rx.takeUsed().map { element in
            let chain = try require(rxChains[UInt16(element.head)])
            let bytes = try rx.written(chain, count: Int(element.length))
            let header = try require(VsockHeader(bytes: bytes))
            return VsockPacket(header: header, payload: Array(bytes.dropFirst(VsockHeader.size)))
        }
    }

    /// TX chains the device has returned.
    func txCompleted() throws -> Int { try tx.takeUsed().count }
}

struct MissingValue: Error {}

/// `#require` outside a test body: unwraps or throws.
func `require`<T>(_ value: T?) throws -> T {
    guard let value else { throw MissingValue() }
    return value
}
