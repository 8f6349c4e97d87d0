import Devices
import GuestMemory
import SystemSupport
import VirtIO
import VirtIOTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A virtio-net device over fake guest memory, driven by two fake queue drivers, with a
/// SOCK_SEQPACKET socket pair as its backend: `peer` is the far end of the "wire".
final class NetTestGuest {
    static let mac: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    let memory = HeapGuestMemory(size: 0x100000)
    let interrupt = RecordingInterruptTrigger()
    let rx: FakeVirtqueueDriver
    let tx: FakeVirtqueueDriver
    let device: NetDevice
    let peer: FileDescriptor

    init(features: UInt64? = nil, backend: (any NetBackend)? = nil) throws {
        rx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x30000)
        tx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x40000), dataSize: 0x30000)
        var fds: [Int32] = [-1, -1]
        let kind = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        guard socketpair(AF_UNIX, kind, 0, &fds) == 0 else { throw Errno.current }
        peer = FileDescriptor(owning: fds[1])
        let own = FileDescriptor(owning: fds[0])
        device = NetDevice(mac: Self.mac, backend: backend ?? FrameDescriptorBackend(descriptor: own))
        device.ackedFeatures = features ?? device.availableFeatures
        device.queues = [rx.makeQueue(maxSize: NetDevice.queueSize), tx.makeQueue(maxSize: NetDevice.queueSize)]
        try device.activate(memory: memory, interrupt: interrupt)
    }

    /// A minimal Ethernet frame of `length` bytes: broadcast destination, our MAC, a payload pattern.
    static func frame(length: Int, fill: UInt8 = 0xab) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xff, count: 6) + mac + [0x08, 0x00]
        bytes += (0..<max(0, length - bytes.count)).map { UInt8(truncatingIfNeeded: Int(fill) &+ $0) }
        return bytes
    }

    /// The guest sends `header` + `frame` in one readable chain and kicks TX.
    func send(_ frame: [UInt8], header: VirtioNetHeader = VirtioNetHeader(), split: Int? = nil) throws {
        let bytes = header.bytes + frame
        if let split {
            try tx.add([.readable(Array(bytes[..<split])), .readable(Array(bytes[split...]))])
        } else {
            try tx.add([.readable(bytes)])
        }
        device.queueNotified(NetDevice.QueueIndex.tx.rawValue)
    }

    /// What the far end received, or nil when nothing is waiting.
    func peerReceive() throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 70_000)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(peer.rawValue, $0.baseAddress, $0.count) }
        if n < 0, errno == EAGAIN { return nil }
        guard n >= 0 else { throw Errno.current }
        return Array(buffer[..<n])
    }

    /// The far end sends one packet (header + frame) towards the guest; the device is woken.
    func peerSend(_ packet: [UInt8], wake: Bool = true) throws {
        let n = packet.withUnsafeBytes { Glibc.write(peer.rawValue, $0.baseAddress, $0.count) }
        guard n == packet.count else { throw Errno.current }
        if wake { device.processBackend() }
    }
}
