import Devices
import Glibc
import GuestMemory
import SystemSupport
import Testing
import VirtIO
import VirtIOTestSupport
@testable import VMM

/// virtio-net on a virtio-mmio slot with the device event loop (no KVM): frames arriving on the
/// backend's descriptor wake the loop (edge-triggered), kicks send frames out.
@Suite struct NetSlotTests {
    let memory = HeapGuestMemory(size: 0x100000)
    let line = RecordingInterruptLine()

    @Test func framesMoveBothWaysThroughTheEventLoop() throws {
        var fds: [Int32] = [-1, -1]
        let kind = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        try #require(socketpair(AF_UNIX, kind, 0, &fds) == 0)
        let peer = FileDescriptor(owning: fds[1])
        let device = NetDevice(
            mac: [2, 0, 0, 0, 0, 9], backend: FrameDescriptorBackend(descriptor: FileDescriptor(owning: fds[0])))
        let slot = try VirtioMmioSlot(spec: .net(device), base: 0xd000_2000, irq: 7, memory: memory, interruptLine: line)
        let driver = MmioDriver(slot: slot)
        #expect(driver.read(.deviceID) == 1)
        let rx = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x10000))
        let tx = try FakeVirtqueueDriver(memory: memory, size: 8, base: GuestAddress(0x30000))
        driver.initialise(queues: [rx, tx])
        #expect(slot.status.contains(.driverOK))
        let loop = try DeviceEventLoop(slots: [slot])
        try loop.start()
        defer { loop.stop() }

        // Two frames before any RX buffer: the first waits in the device, the second in the socket.
        let frame = [UInt8](repeating: 0xff, count: 6) + [2, 0, 0, 0, 0, 1, 0x08, 0x00] + [UInt8](repeating: 7, count: 46)
        for _ in 0..<2 {
            let packet = VirtioNetHeader().bytes + frame
            #expect(packet.withUnsafeBytes { write(peer.rawValue, $0.baseAddress, $0.count) } == 72)
        }
        usleep(20_000)
        #expect(try rx.usedIndex() == 0)
        // The guest posts buffers and kicks RX: both frames arrive, though no new edge came.
        let chains = try (0..<2).map { _ in try rx.add([.writable(1526)]) }
        try slot.queueEvents[0].signal()
        #expect(try waitUntil { try rx.usedIndex() == 2 })
        #expect(try rx.takeUsed().map(\.length) == [72, 72])
        #expect(try Array(rx.written(chains[1], count: 72)[12...]) == frame)

        // A frame arriving while buffers are posted is picked up by the edge alone.
        try rx.add([.writable(1526)])
        try slot.queueEvents[0].signal()
        usleep(20_000)
        _ = (VirtioNetHeader().bytes + frame).withUnsafeBytes { write(peer.rawValue, $0.baseAddress, $0.count) }
        #expect(try waitUntil { try rx.usedIndex() == 3 })

        // TX: a kick sends the frame to the peer.
        try tx.add([.readable(VirtioNetHeader().bytes + frame)])
        try slot.queueEvents[1].signal()
        var buffer = [UInt8](repeating: 0, count: 2048)
        var n = -1
        _ = waitUntil {
            n = buffer.withUnsafeMutableBytes { read(peer.rawValue, $0.baseAddress, $0.count) }
            return n >= 0
        }
        #expect(n == 72 && Array(buffer[12..<72]) == frame)
        #expect(line.count >= 2)
    }
}
