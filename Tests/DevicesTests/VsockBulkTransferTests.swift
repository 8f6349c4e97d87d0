import Devices
import GuestMemory
import Synchronization
import Testing
import VirtIO
import VirtIOTestSupport

/// Several MB through one vsock connection, each way, with a fake driver that behaves like
/// Linux's virtio_transport: EVENT_IDX negotiated (it kicks only when avail.idx passes the
/// device's avail_event), 16 RX buffers of 4 KiB refilled as they are used, a credit update only
/// when its free space drops below 64 KiB, TX packets of up to 64 KiB within the host's credit.
/// The host side is event-driven like the hypervisor's bridge: it reads and writes only when the
/// stream's event handler fired. Regression for a 300 KB echo that stalled while 48 KB worked.
@Suite struct VsockBulkTransferTests {
    @Test func fourMegabytesHostToGuestAlone() throws {
        try BulkLink().run(hostToGuest: 4 << 20, guestToHost: 0)
    }

    @Test func threeMegabytesEachWayAtOnce() throws {
        try BulkLink().run(hostToGuest: 3 << 20, guestToHost: 3 << 20)
    }

    @Test func deviceAsksForKicksThroughAvailEvent() throws {
        let link = try BulkLink()
        try link.connect()
        // After handling the REQUEST the device asked for a kick at the next TX buffer.
        #expect(try link.tx.availableEvent() == link.tx.availableIndex)
        #expect(link.kicks == 2, "one RX kick for the first buffers, one TX kick for the REQUEST")
    }
}

/// One device, one fake Linux-like driver, one host stream.
final class BulkLink {
    static let guestPort: UInt32 = 7000
    static let hostPort: UInt32 = 1024
    static let guestBufferAllocation: UInt32 = 256 * 1024
    static let rxBufferSize: UInt32 = 4096 + 44

    let memory = HeapGuestMemory(size: 0x400000)
    let rx: FakeVirtqueueDriver
    let tx: FakeVirtqueueDriver
    let event: FakeVirtqueueDriver
    let muxer = VsockMuxer()
    let device: VsockDevice
    let interrupt = RecordingInterruptTrigger()

    private var rxChains: [UInt16: FakeVirtqueueDriver.Chain] = [:]
    private var rxPosted = 0
    private var txPosted = 0
    // Guest's view of the connection (virtio_vsock_sock).
    private var guestForwardCount: UInt32 = 0
    private var guestLastAdvertised: UInt32 = 0
    private var guestSent: UInt32 = 0
    private var hostBufferAllocation: UInt32 = 0
    private var hostForwardCount: UInt32 = 0
    private(set) var kicks = 0

    private let hostEvent = Flag(true)
    private let deviceWake = Flag(false)
    private var stream: VsockStream?

    init() throws {
        rx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x1000), dataSize: 0x20000)
        tx = try FakeVirtqueueDriver(memory: memory, size: 16, base: GuestAddress(0x40000), dataSize: 0x200000)
        event = try FakeVirtqueueDriver(memory: memory, size: 4, base: GuestAddress(0x300000), dataSize: 0x1000)
        device = VsockDevice(guestCID: 3, backend: muxer)
        device.queues = [
            rx.makeQueue(maxSize: 256, eventIndex: true), tx.makeQueue(maxSize: 256, eventIndex: true),
            event.makeQueue(maxSize: 256, eventIndex: true),
        ]
        try device.activate(memory: memory, interrupt: interrupt)
        let wake = deviceWake
        muxer.setWakeHandler { wake.set() }
    }

    /// Adds chains with `add`, then kicks queue `index` only if the device's avail_event lies in
    /// the range just published (vring_need_event), as virtqueue_kick_prepare does.
    private func publish(_ driver: FakeVirtqueueDriver, queue index: Int, _ add: () throws -> Void) throws {
        let old = driver.availableIndex
        try add()
        let new = driver.availableIndex
        guard new != old else { return }
        let event = try driver.availableEvent()
        if new &- event &- 1 < new &- old {
            kicks += 1
            device.queueNotified(index)
        }
    }

    private func refillRX() throws {
        try publish(rx, queue: 0) {
            while rxPosted < Int(rx.size) {
                let chain = try rx.add([.writable(Self.rxBufferSize)])
                rxChains[chain.head] = chain
                rxPosted += 1
            }
        }
    }

    private func header(_ op: VsockOp, length: UInt32 = 0) -> VsockHeader {
        VsockHeader(
            sourceCID: 3, destinationCID: VsockHeader.hostCID, sourcePort: Self.guestPort, destinationPort: Self.hostPort,
            length: length, op: op, bufferAllocation: Self.guestBufferAllocation, forwardCount: guestForwardCount)
    }

    /// Sends one TX packet if the ring has room; false when it is full.
    private func sendTX(_ header: VsockHeader, _ payload: [UInt8] = []) throws -> Bool {
        txPosted -= try tx.takeUsed().count
        guard txPosted < Int(tx.size) else { return false }
        try publish(tx, queue: 1) {
            try tx.add(payload.isEmpty ? [.readable(header.bytes)] : [.readable(header.bytes), .readable(payload)])
        }
        txPosted += 1
        guestLastAdvertised = header.forwardCount
        return true
    }

    /// Handshake: RX buffers, the guest's REQUEST, the host accepts.
    func connect() throws {
        let listener = try muxer.listen(port: Self.hostPort)
        try refillRX()
        #expect(try sendTX(header(.request)))
        _ = try receiveRX()
        stream = try #require(listener.accept())
        let flag = hostEvent
        stream?.setEventHandler { flag.set() }
    }

    /// Packets the device delivered; payload bytes of RW packets are appended to `into`.
    @discardableResult
    private func receiveRX(into received: inout [UInt8]) throws -> Int {
        let used = try rx.takeUsed()
        rxPosted -= used.count
        for element in used {
            let chain = try #require(rxChains[UInt16(element.head)])
            let bytes = try rx.written(chain, count: Int(element.length))
            let header = try #require(VsockHeader(bytes: bytes))
            hostBufferAllocation = header.bufferAllocation
            hostForwardCount = header.forwardCount
            switch header.operation {
            case .readWrite:
                received += bytes.dropFirst(VsockHeader.size)
                guestForwardCount &+= header.length  // the guest application reads at once
            case .creditRequest:
                _ = try sendTX(self.header(.creditUpdate))
            case .response, .creditUpdate: break
            default: Issue.record("unexpected \(String(describing: header.operation))")
            }
        }
        return used.count
    }

    private func receiveRX() throws -> Int {
        var ignored: [UInt8] = []
        return try receiveRX(into: &ignored)
    }

    func run(hostToGuest: Int, guestToHost: Int) throws {
        try connect()
        let stream = try #require(stream)
        let down = (0..<hostToGuest).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        let up = (0..<guestToHost).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ $0 >> 9) }
        var downSent = 0
        var downReceived: [UInt8] = []
        var upSent = 0
        var upReceived: [UInt8] = []
        downReceived.reserveCapacity(hostToGuest)
        upReceived.reserveCapacity(guestToHost)
        var idle = 0
        while downReceived.count < hostToGuest || upReceived.count < guestToHost {
            let before = (downSent, downReceived.count, upSent, upReceived.count)
            // Host: only when the stream said something happened (like the bridge).
            if hostEvent.take() {
                while downSent < hostToGuest {
                    let accepted = try stream.write(Array(down[downSent..<min(hostToGuest, downSent + 64 * 1024)]))
                    downSent += accepted
                    if accepted == 0 { break }
                }
                while case let bytes = try stream.read(maxCount: 64 * 1024), !bytes.isEmpty { upReceived += bytes }
            }
            // The device's event loop: backend work.
            if deviceWake.take() { device.processBackend() }
            // Guest: consume RX, refill, send a credit update when space runs low, send data.
            try receiveRX(into: &downReceived)
            try refillRX()
            if Self.guestBufferAllocation - (guestForwardCount &- guestLastAdvertised) < 64 * 1024 {
                _ = try sendTX(header(.creditUpdate))
            }
            while upSent < guestToHost {
                let credit = Int(hostBufferAllocation) - Int(guestSent &- hostForwardCount)
                let count = min(credit, 64 * 1024, guestToHost - upSent)
                guard count > 0 else { break }
                guard try sendTX(header(.readWrite, length: UInt32(count)), Array(up[upSent..<upSent + count])) else { break }
                upSent += count
                guestSent &+= UInt32(count)
            }
            idle = (downSent, downReceived.count, upSent, upReceived.count) == before ? idle + 1 : 0
            if idle > 100 {
                Issue.record("""
                    stalled: host->guest \(downSent) written, \(downReceived.count) of \(hostToGuest) received; \
                    guest->host \(upSent) sent, \(upReceived.count) of \(guestToHost) read; kicks \(kicks)
                    """)
                return
            }
        }
        #expect(downReceived == down)
        #expect(upReceived == up)
        #expect(device.droppedPackets == 0 && stream.phase == .established)
    }
}

/// A flag set from callbacks (any thread) and taken by the test loop.
final class Flag: Sendable {
    private let value: Atomic<Bool>
    init(_ initial: Bool) { value = Atomic(initial) }
    func set() { value.store(true, ordering: .releasing) }
    /// Whether it was set since the last call; clears it.
    func take() -> Bool { value.exchange(false, ordering: .acquiringAndReleasing) }
}
