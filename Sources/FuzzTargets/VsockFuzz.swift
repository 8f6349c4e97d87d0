// The vsock device and its host muxer against a hostile guest: TX packets with any header and
// payload, RX buffers of any size, raw writes into the rings, interleaved with what the host side
// does (listen, connect, write, read, shutdown, close). Each input is a list of operations.
import Devices
import GuestMemory
import VirtIO
import VirtIOTestSupport

enum VsockFuzz {
    static let guestCID: UInt64 = 3
    static let listenPort: UInt32 = 1024

    /// One operation per leading byte (mod `Op.allCases.count`).
    enum Op: UInt8, CaseIterable {
        /// u8 split, 44-byte header, u16 payload length (mod 1024), payload. Split bit 0: header and
        /// payload in separate descriptors; bit 1: keep the header's CIDs (else guest to host).
        case send
        /// u8 count (mod 4 + 1), u16 size (mod 8192 + 1), u8 split: RX buffers offered.
        case offerBuffers
        /// u32 guest port: the host connects.
        case connect
        /// u8 stream, u16 length (mod 2048): the host writes.
        case write
        /// u8 stream, u16 max: the host reads.
        case read
        /// The host accepts a pending guest connection.
        case accept
        /// u8 stream, u8 how (1 receive, 2 send, 3 both, else close).
        case shutdown
        /// u16 offset (mod the rings' span), u16 value: the guest scribbles on its rings.
        case poke
        /// The device runs its backend (host-to-guest packets) and the guest reaps used buffers.
        case process
    }

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        guard let guest = try? Guest() else { preconditionFailure("vsock fuzz: cannot set up the device") }
        var streams: [VsockStream] = []
        var operations = 0
        while !input.isEmpty, operations < 256 {
            operations += 1
            guard let op = Op(rawValue: input.u8() % UInt8(Op.allCases.count)) else { continue }
            switch op {
            case .send:
                let split = input.u8()
                var header = input.take(VsockHeader.size)
                header += [UInt8](repeating: 0, count: VsockHeader.size - header.count)
                if split & 2 == 0 {
                    // Most packets should get past the CID check to reach the muxer.
                    header.replaceSubrange(0..<16, with: VsockHeader(
                        sourceCID: guestCID, destinationCID: VsockHeader.hostCID, sourcePort: 0, destinationPort: 0, op: .request
                    ).bytes[0..<16])
                }
                let payload = input.take(Int(input.u16() % 1024))
                let segments: [FakeVirtqueueDriver.Segment] =
                    split & 1 != 0 && !payload.isEmpty ? [.readable(header), .readable(payload)] : [.readable(header + payload)]
                _ = try? guest.tx.add(segments)
                guest.device.queueNotified(VsockDevice.QueueIndex.tx.rawValue)
            case .offerBuffers:
                let count = Int(input.u8() % 4) + 1
                let size = UInt32(input.u16() % 8192) + 1
                let split = input.u8() & 1 != 0 && size > 44
                for _ in 0..<count {
                    _ = try? guest.rx.add(split ? [.writable(44), .writable(size - 44)] : [.writable(size)])
                }
                guest.device.queueNotified(VsockDevice.QueueIndex.rx.rawValue)
            case .connect:
                if let stream = try? guest.muxer.connect(port: input.u32()) { streams.append(stream) }
            case .write:
                let stream = pick(streams, input.u8())
                let data = [UInt8](repeating: 0x5a, count: Int(input.u16() % 2048))
                _ = try? stream?.write(data)
            case .read:
                let stream = pick(streams, input.u8())
                _ = try? stream?.read(maxCount: Int(input.u16()))
            case .accept:
                if let stream = guest.listener.accept() { streams.append(stream) }
            case .shutdown:
                let stream = pick(streams, input.u8())
                switch input.u8() % 4 {
                case 1: stream?.shutdown(.receive)
                case 2: stream?.shutdown(.send)
                case 3: stream?.shutdown(.both)
                default: stream?.close()
                }
            case .poke:
                let offset = UInt64(input.u16()) % Guest.ringSpan
                _ = try? guest.memory.store(input.u16(), at: GuestAddress(Guest.ringBase + offset))
                guest.device.queueNotified(Int(input.u8() % 3))
            case .process:
                guest.device.processBackend()
                _ = try? guest.rx.takeUsed()
                _ = try? guest.tx.takeUsed()
            }
        }
        streams.forEach { $0.close() }
        guest.listener.close()
        guest.device.processBackend()
        guest.device.reset()
    }

    private static func pick(_ streams: [VsockStream], _ index: UInt8) -> VsockStream? {
        streams.isEmpty ? nil : streams[Int(index) % streams.count]
    }

    /// A device on three fake-driver queues in 128 KiB of guest memory (rings, then buffers).
    final class Guest {
        static let ringBase: UInt64 = 0x1000
        static let ringSpan: UInt64 = 0x1_4000
        let memory = HeapGuestMemory(size: 0x2_0000)
        let rx: FakeVirtqueueDriver
        let tx: FakeVirtqueueDriver
        let event: FakeVirtqueueDriver
        let muxer = VsockMuxer(bufferAllocation: 64 * 1024, sendLimit: 64 * 1024, backlog: 4)
        let device: VsockDevice
        let listener: VsockListener

        init() throws {
            rx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x8000)
            tx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0xa000), dataSize: 0x8000)
            event = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x1_4000), dataSize: 0x1000)
            device = VsockDevice(guestCID: VsockFuzz.guestCID, backend: muxer)
            device.queues = [rx.makeQueue(maxSize: 256), tx.makeQueue(maxSize: 256), event.makeQueue(maxSize: 256)]
            listener = try muxer.listen(port: VsockFuzz.listenPort)
            try device.activate(memory: memory, interrupt: RecordingInterruptTrigger())
        }
    }

    // MARK: seeds

    static var seeds: [(name: String, bytes: [UInt8])] {
        func header(_ op: VsockOp, from: UInt32, to: UInt32, length: UInt32 = 0, flags: UInt32 = 0) -> [UInt8] {
            VsockHeader(
                sourceCID: guestCID, destinationCID: VsockHeader.hostCID, sourcePort: from, destinationPort: to,
                length: length, op: op, flags: flags, bufferAllocation: 0x10000
            ).bytes
        }
        func send(_ w: inout SeedWriter, _ bytes: [UInt8], payload: [UInt8] = [], split: UInt8 = 0) {
            w.u8(Op.send.rawValue)
            w.u8(split)
            w.raw(bytes)
            w.u16(UInt16(payload.count))
            w.raw(payload)
        }
        func op(_ w: inout SeedWriter, _ op: Op, _ args: [UInt8] = []) {
            w.u8(op.rawValue)
            w.raw(args)
        }
        // The guest connects to the listener, sends data, the host answers, the guest shuts down.
        var guestSide = SeedWriter()
        op(&guestSide, .offerBuffers, [4, 0x00, 0x10, 0])
        send(&guestSide, header(.request, from: 5000, to: listenPort))
        op(&guestSide, .accept)
        send(&guestSide, header(.readWrite, from: 5000, to: listenPort, length: 5), payload: Array("hello".utf8), split: 1)
        op(&guestSide, .read, [0, 0xff, 0xff])
        op(&guestSide, .write, [0, 5, 0])
        op(&guestSide, .process)
        send(&guestSide, header(.creditUpdate, from: 5000, to: listenPort))
        send(&guestSide, header(.shutdown, from: 5000, to: listenPort, flags: 3))
        op(&guestSide, .process)
        // The host connects to the guest (as the shim reaches the agent), which answers.
        var hostSide = SeedWriter()
        op(&hostSide, .offerBuffers, [2, 0x2c, 0x10, 1])
        op(&hostSide, .connect, [0x00, 0x04, 0, 0])
        op(&hostSide, .process)
        send(&hostSide, header(.response, from: 1024, to: 1 << 30))
        op(&hostSide, .write, [0, 0x00, 0x02])
        op(&hostSide, .process)
        send(&hostSide, header(.readWrite, from: 1024, to: 1 << 30, length: 3), payload: [1, 2, 3])
        send(&hostSide, header(.creditRequest, from: 1024, to: 1 << 30))
        send(&hostSide, header(.reset, from: 1024, to: 1 << 30))
        op(&hostSide, .shutdown, [0, 0])
        op(&hostSide, .process)
        // Packets for nobody, and a guest scribbling on the TX ring.
        var stray = SeedWriter()
        send(&stray, header(.request, from: 7, to: 9))
        send(&stray, header(.readWrite, from: 7, to: 9, length: 1000))
        op(&stray, .poke, [0x02, 0xf0, 0xff, 0xff, 1])
        op(&stray, .offerBuffers, [0, 0x10, 0, 0])
        op(&stray, .process)
        return [("guest-connects", guestSide.bytes), ("host-connects", hostSide.bytes), ("stray", stray.bytes)]
    }
}
