import Devices
import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

/// What a hostile guest can post on the net queues: bad TX packets are dropped (counted, chain
/// returned); RX chains no driver would post and broken rings put the device in needs-reset.
@Suite struct NetHostileTests {
    @Test func txChainShorterThanAHeaderIsDropped() throws {
        let guest = try NetTestGuest()
        try guest.tx.add([.readable([0, 0, 0, 0, 0, 0, 0, 0])])
        guest.device.queueNotified(NetDevice.QueueIndex.tx.rawValue)
        try guest.tx.add([.writable(64)])
        guest.device.queueNotified(NetDevice.QueueIndex.tx.rawValue)
        #expect(guest.device.txDropped == 2 && guest.device.txFrames == 0)
        #expect(try guest.peerReceive() == nil)
        #expect(try guest.tx.takeUsed().count == 2, "dropped chains still go back to the guest")
        #expect(guest.interrupt.needsResetCount == 0)
        try guest.send(NetTestGuest.frame(length: 60))
        #expect(try guest.peerReceive()?.count == 72, "the queue stays usable")
    }

    @Test func oversizedTxFrameIsDropped() throws {
        let guest = try NetTestGuest()
        try guest.send(NetTestGuest.frame(length: NetDevice.maxFrame + 1), split: 40_000)
        #expect(guest.device.txDropped == 1)
        #expect(try guest.peerReceive() == nil)
        try guest.send(NetTestGuest.frame(length: NetDevice.maxFrame), split: 40_000)
        #expect(try guest.peerReceive()?.count == NetDevice.maxFrame + 12, "the largest frame passes")
    }

    @Test func txOffloadsNotNegotiatedAreDropped() throws {
        let guest = try NetTestGuest(features: VirtioFeature.version1 | NetFeature.mac)
        let frame = NetTestGuest.frame(length: 60)
        try guest.send(frame, header: VirtioNetHeader(flags: VirtioNetHeader.flagNeedsCsum))
        try guest.send(frame, header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 1448))
        try guest.send(frame, header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoUDP, gsoSize: 1448))
        try guest.send(frame, header: VirtioNetHeader(flags: 0x80))
        #expect(guest.device.txDropped == 4)
        #expect(try guest.peerReceive() == nil)
        let full = try NetTestGuest()
        try full.send(frame, header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoTCPv4, gsoSize: 0))
        try full.send(frame, header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoECN))
        #expect(full.device.txDropped == 2)
        try full.send(frame, header: VirtioNetHeader(gsoType: VirtioNetHeader.gsoTCPv6 | VirtioNetHeader.gsoECN, gsoSize: 1440))
        #expect(try full.peerReceive()?.count == 72)
    }

    @Test func readableRxBufferPutsTheDeviceInNeedsReset() throws {
        let guest = try NetTestGuest()
        try guest.rx.add([.readable([1, 2, 3]), .writable(2048)])
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 60))
        #expect(guest.interrupt.needsResetCount == 1)
        #expect(guest.device.rxFrames == 0)
        // Further kicks and frames do nothing until the driver resets the device.
        try guest.rx.add([.writable(2048)])
        guest.device.queueNotified(NetDevice.QueueIndex.rx.rawValue)
        try guest.send(NetTestGuest.frame(length: 60))
        #expect(guest.device.rxFrames == 0 && guest.interrupt.needsResetCount == 1)
        #expect(try guest.peerReceive() == nil)
    }

    @Test func rxBufferTooSmallForTheHeaderPutsTheDeviceInNeedsReset() throws {
        let guest = try NetTestGuest()
        try guest.rx.add([.writable(8)])
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 60))
        #expect(guest.interrupt.needsResetCount == 1)
    }

    @Test func descriptorOutsideGuestMemoryBreaksTheQueue() throws {
        let guest = try NetTestGuest()
        try guest.rx.writeDescriptor(
            .init(address: 0xffff0, length: 0x100, flags: DescriptorFlag.write, next: 0), at: 0)
        try guest.rx.publish(head: 0)
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 60))
        #expect(guest.interrupt.needsResetCount == 1 && guest.device.queues[0].isBroken)
        try guest.tx.writeDescriptor(.init(address: UInt64.max - 8, length: 64, flags: 0, next: 0), at: 0)
        try guest.tx.publish(head: 0)
        guest.device.queueNotified(NetDevice.QueueIndex.tx.rawValue)
        #expect(try guest.peerReceive() == nil)
    }

    @Test func txDescriptorOutsideGuestMemoryAloneSignalsReset() throws {
        let guest = try NetTestGuest()
        try guest.tx.writeDescriptor(.init(address: 0x100000 - 16, length: 64, flags: 0, next: 0), at: 0)
        try guest.tx.publish(head: 0)
        guest.device.queueNotified(NetDevice.QueueIndex.tx.rawValue)
        #expect(guest.interrupt.needsResetCount == 1 && guest.device.queues[1].isBroken)
    }

    @Test func oversizedRxFrameWithoutMergeableBuffersIsDropped() throws {
        let guest = try NetTestGuest(features: VirtioFeature.version1 | NetFeature.mac)
        let chain = try guest.rx.add([.writable(1526)])
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 3000))
        #expect(try guest.rx.takeUsed() == [.init(head: UInt32(chain.head), length: 0)])
        #expect(guest.device.rxDropped == 1 && guest.interrupt.needsResetCount == 0)
        try guest.rx.add([.writable(1526)])
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 1514))
        #expect(try guest.rx.takeUsed().map(\.length) == [1526])
    }

    @Test func resetClearsTheNeedsResetState() throws {
        let guest = try NetTestGuest()
        try guest.rx.add([.writable(8)])
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 60))
        #expect(guest.interrupt.needsResetCount == 1)
        guest.device.reset()
        let rx = try FakeVirtqueueDriver(memory: guest.memory, size: 16, base: GuestAddress(0x80000), dataSize: 0x8000)
        guest.device.queues = [rx.makeQueue(maxSize: NetDevice.queueSize), guest.tx.makeQueue(maxSize: NetDevice.queueSize)]
        try guest.device.activate(memory: guest.memory, interrupt: guest.interrupt)
        try rx.add([.writable(2048)])
        try guest.peerSend(VirtioNetHeader().bytes + NetTestGuest.frame(length: 60))
        #expect(try rx.takeUsed().map(\.length) == [72])
    }
}
