import Devices
import GuestMemory
import Testing
import VirtIO

/// TX packets a hostile guest can write: each is dropped (counted, chain returned), nothing traps.
@Suite struct VsockHostileTests {
    @Test func headerLengthLargerThanTheBuffers() throws {
        let guest = try VsockTestGuest()
        let listener = try guest.muxer.listen(port: 1024)
        try guest.offerBuffers(4)
        try guest.send(guest.header(.request, from: 5000, to: 1024))
        _ = try guest.receive()
        let stream = try #require(listener.accept())

        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), Array(repeating: 1, count: 10), length: 100)
        #expect(guest.device.droppedPackets == 1)
        #expect(try stream.read() == [])
        #expect(try guest.txCompleted() == 2, "the dropped chain still goes back to the guest")
        #expect(guest.interrupt.needsResetCount == 0, "a bad packet is dropped, the queue stays usable")

        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), [7])
        #expect(try stream.read() == [7])
    }

    @Test func headerLengthAboveTheBound() throws {
        let guest = try VsockTestGuest()
        let size = VsockDevice.maxPayload + 1
        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), Array(repeating: 0, count: size))
        #expect(guest.device.droppedPackets == 1)
        #expect(!guest.muxer.hasPendingPackets, "not even an RST: the packet never reached the backend")
    }

    @Test func chainShorterThanAHeader() throws {
        let guest = try VsockTestGuest()
        try guest.tx.add([.readable(Array(repeating: 0, count: 43))])
        guest.device.queueNotified(VsockDevice.QueueIndex.tx.rawValue)
        try guest.tx.add([.writable(64)])
        guest.device.queueNotified(VsockDevice.QueueIndex.tx.rawValue)
        #expect(guest.device.droppedPackets == 2)
        #expect(try guest.txCompleted() == 2)
    }

    @Test func spoofedCIDs() throws {
        let guest = try VsockTestGuest()
        _ = try guest.muxer.listen(port: 1024)
        var spoofed = guest.header(.request, from: 5000, to: 1024)
        spoofed.sourceCID = 7
        try guest.send(spoofed)
        var elsewhere = guest.header(.request, from: 5000, to: 1024)
        elsewhere.destinationCID = 9
        try guest.send(elsewhere)
        #expect(guest.device.droppedPackets == 2)
        #expect(!guest.muxer.hasPendingPackets)
    }

    @Test func unknownOpOnAConnectionResetsIt() throws {
        let guest = try VsockTestGuest()
        let listener = try guest.muxer.listen(port: 1024)
        try guest.offerBuffers(4)
        try guest.send(guest.header(.request, from: 5000, to: 1024))
        _ = try guest.receive()
        let stream = try #require(listener.accept())
        var bogus = guest.header(.readWrite, from: 5000, to: 1024)
        bogus.op = 99
        try guest.send(bogus)
        #expect(try guest.receive().map(\.header.operation) == [.reset])
        #expect(stream.phase == .closed(.protocolError))
    }

    @Test func malformedTXChainBreaksTheQueueNotTheHost() throws {
        let guest = try VsockTestGuest()
        try guest.tx.publish(head: 99)
        guest.device.queueNotified(VsockDevice.QueueIndex.tx.rawValue)
        #expect(guest.device.queues[VsockDevice.QueueIndex.tx.rawValue].isBroken)
        #expect(guest.interrupt.needsResetCount == 1)
        // Further kicks do nothing harmful.
        guest.device.queueNotified(VsockDevice.QueueIndex.tx.rawValue)
        #expect(guest.interrupt.needsResetCount == 2 || guest.interrupt.needsResetCount == 1)
    }

    @Test func rxBufferTooSmallForAHeaderIsReturnedEmpty() throws {
        let guest = try VsockTestGuest()
        try guest.offerBuffers(1, size: 20)
        try guest.offerBuffers(1)
        try guest.send(guest.header(.request, from: 4000, to: 9999))
        let used = try guest.rx.takeUsed()
        #expect(used.map(\.length) == [0, 44])
    }
}
