import Devices
import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

@Suite struct NetDeviceTests {
    @Test func offersOneQueuePairAndTheConfigSpace() throws {
        let guest = try NetTestGuest()
        let device = guest.device
        #expect(device.deviceType == .net && device.queues.count == 2)
        for feature in [
            VirtioFeature.version1, NetFeature.mac, NetFeature.mtu, NetFeature.status, NetFeature.mergeableRxBuffers,
            NetFeature.csum, NetFeature.guestCsum, NetFeature.hostTSO4, NetFeature.guestTSO6,
        ] {
            #expect(device.availableFeatures & feature != 0)
        }
        #expect(device.availableFeatures & (1 << 17) == 0, "no control queue")
        // mac, status = LINK_UP, max_virtqueue_pairs = 1, mtu = 1500
        #expect(device.configSpace == NetTestGuest.mac + [1, 0, 1, 0, 0xdc, 0x05])
    }

    @Test func txFrameReachesTheBackendWithItsHeader() throws {
        let guest = try NetTestGuest()
        let frame = NetTestGuest.frame(length: 60)
        let header = VirtioNetHeader(flags: VirtioNetHeader.flagNeedsCsum, csumStart: 34, csumOffset: 16, numBuffers: 7)
        try guest.send(frame, header: header, split: 5)
        var expected = header
        expected.numBuffers = 0
        #expect(try guest.peerReceive() == expected.bytes + frame)
        #expect(try guest.tx.takeUsed().map(\.length) == [0])
        #expect(guest.device.txFrames == 1 && guest.interrupt.usedBufferCount == 1)
    }

    @Test func rxFrameLandsWithNumBuffersAndTheUsedRing() throws {
        let guest = try NetTestGuest(features: VirtioFeature.version1 | NetFeature.mac)
        let chain = try guest.rx.add([.writable(1526)])
        let frame = NetTestGuest.frame(length: 98)
        try guest.peerSend(VirtioNetHeader(flags: VirtioNetHeader.flagDataValid).bytes + frame)
        let used = try guest.rx.takeUsed()
        #expect(used == [.init(head: UInt32(chain.head), length: 110)])
        let written = try guest.rx.written(chain, count: 110)
        // Without GUEST_CSUM the device may not claim DATA_VALID; num_buffers is 1.
        #expect(VirtioNetHeader(bytes: written) == VirtioNetHeader(numBuffers: 1))
        #expect(Array(written[12...]) == frame)
        #expect(guest.device.rxFrames == 1 && guest.interrupt.usedBufferCount == 1)
    }

    @Test func mergeableFrameSpansSeveralChains() throws {
        let guest = try NetTestGuest()
        let chains = try (0..<3).map { _ in try guest.rx.add([.writable(100)]) }
        let frame = NetTestGuest.frame(length: 238)
        try guest.peerSend(VirtioNetHeader(flags: VirtioNetHeader.flagDataValid).bytes + frame)
        #expect(try guest.rx.takeUsed() == chains.enumerated().map { i, c in .init(head: UInt32(c.head), length: i < 2 ? 100 : 50) })
        var written: [UInt8] = []
        for (i, chain) in chains.enumerated() { written += try guest.rx.written(chain, count: i < 2 ? 100 : 50) }
        #expect(VirtioNetHeader(bytes: written) == VirtioNetHeader(flags: VirtioNetHeader.flagDataValid, numBuffers: 3))
        #expect(Array(written[12...]) == frame)
    }

    @Test func frameWaitsForBuffersThenArrivesOnTheRxKick() throws {
        let guest = try NetTestGuest()
        let first = try guest.rx.add([.writable(64)])
        let frame = NetTestGuest.frame(length: 100)
        try guest.peerSend(VirtioNetHeader().bytes + frame)
        #expect(try guest.rx.takeUsed().isEmpty, "half a frame is never handed over")
        #expect(guest.device.waitingForRxBuffers)
        let second = try guest.rx.add([.writable(64)])
        guest.device.queueNotified(NetDevice.QueueIndex.rx.rawValue)
        #expect(try guest.rx.takeUsed().map(\.length) == [64, 48])
        #expect(try Array((guest.rx.written(first, count: 64) + guest.rx.written(second, count: 48))[12...]) == frame)
        #expect(!guest.device.waitingForRxBuffers)
    }

    @Test func severalFramesInARow() throws {
        let guest = try NetTestGuest()
        for _ in 0..<4 { try guest.rx.add([.writable(2048)]) }
        for i in 0..<3 { try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 60 + i), wake: false) }
        guest.device.processBackend()
        #expect(try guest.rx.takeUsed().map(\.length) == [72, 73, 74])
        for i in 0..<3 { try guest.send(NetTestGuest.frame(length: 60 + i)) }
        for i in 0..<3 { #expect(try guest.peerReceive()?.count == 72 + i) }
    }
}
