import Devices
import GuestMemory
import Testing
import VirtIO

@Suite struct VsockConnectionTests {
    @Test func headerIsFortyFourLittleEndianBytes() {
        let header = VsockHeader(
            sourceCID: 0x0102_0304_0506_0708, destinationCID: 2, sourcePort: 0x1122_3344, destinationPort: 1024,
            length: 5, op: .readWrite, flags: 3, bufferAllocation: 0x10000, forwardCount: 7)
        let expected: [UInt8] = [
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // src_cid
            0x02, 0, 0, 0, 0, 0, 0, 0,  // dst_cid
            0x44, 0x33, 0x22, 0x11,  // src_port
            0x00, 0x04, 0, 0,  // dst_port
            0x05, 0, 0, 0,  // len
            0x01, 0x00,  // type STREAM
            0x05, 0x00,  // op RW
            0x03, 0, 0, 0,  // flags
            0x00, 0x00, 0x01, 0x00,  // buf_alloc
            0x07, 0, 0, 0,  // fwd_cnt
        ]
        #expect(header.bytes == expected)
        #expect(VsockHeader(bytes: expected) == header)
        #expect(VsockHeader(bytes: Array(expected.prefix(43))) == nil)
    }

    @Test func guestInitiatedConnectionFromRequestToShutdown() throws {
        let guest = try VsockTestGuest()
        let listener = try guest.muxer.listen(port: 1024)
        try guest.offerBuffers(8)

        try guest.send(guest.header(.request, from: 5000, to: 1024))
        let response = try guest.receive()
        #expect(response.map(\.header.operation) == [.response])
        #expect(response[0].header.sourcePort == 1024 && response[0].header.destinationPort == 5000)
        #expect(response[0].header.sourceCID == VsockHeader.hostCID && response[0].header.destinationCID == VsockTestGuest.cid)
        #expect(response[0].header.bufferAllocation == guest.muxer.bufferAllocation)
        #expect(guest.interrupt.usedBufferCount > 0)

        let stream = try #require(listener.accept())
        #expect(listener.accept() == nil)
        #expect(stream.phase == .established && stream.guestPort == 5000 && stream.hostPort == 1024)

        // Guest to host.
        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), Array("hello".utf8))
        #expect(try stream.read() == Array("hello".utf8))
        #expect(try stream.read() == [])
        #expect(!stream.isAtEnd)

        // Host to guest.
        #expect(try stream.write(Array("world".utf8)) == 5)
        guest.device.processBackend()
        let data = try guest.receive()
        #expect(data.map(\.header.operation) == [.readWrite])
        #expect(data[0].payload == Array("world".utf8) && data[0].header.length == 5)

        // The guest shuts down both directions: the host resets and the stream ends.
        try guest.send(guest.header(.shutdown, from: 5000, to: 1024, flags: VsockShutdown.both.rawValue))
        #expect(try guest.receive().map(\.header.operation) == [.reset])
        #expect(stream.phase == .closed(.closed) && stream.isAtEnd)
        #expect(throws: VsockError.closed(reason: .closed)) { try stream.write([1]) }
        #expect(try guest.txCompleted() == 3)
    }

    @Test func hostInitiatedConnectionAndOrderlyClose() throws {
        let guest = try VsockTestGuest()
        try guest.offerBuffers(8, split: true)
        let stream = try guest.muxer.connect(port: 1025)
        #expect(stream.phase == .connecting)
        #expect(throws: VsockError.notConnected) { try stream.write([1]) }
        guest.device.processBackend()
        let request = try #require(try guest.receive().first)
        #expect(request.header.operation == .request && request.header.destinationPort == 1025)
        #expect(request.header.sourcePort == stream.hostPort)

        try guest.send(guest.header(.response, from: 1025, to: stream.hostPort))
        #expect(stream.phase == .established)
        try guest.send(guest.header(.readWrite, from: 1025, to: stream.hostPort), [1, 2, 3])
        #expect(try stream.read(maxCount: 2) == [1, 2])
        #expect(try stream.read() == [3])
        try stream.write([9, 8, 7])
        stream.close()
        guest.device.processBackend()
        let packets = try guest.receive()
        #expect(packets.map(\.header.operation) == [.readWrite, .shutdown])
        #expect(packets[0].payload == [9, 8, 7], "pending data goes out before SHUTDOWN")
        #expect(packets[1].header.flags == VsockShutdown.both.rawValue)

        // The guest answers with RST; the connection is gone, nothing more is sent.
        try guest.send(guest.header(.reset, from: 1025, to: stream.hostPort))
        #expect(!guest.muxer.hasPendingPackets)
        #expect(stream.phase == .closed(.closed))
    }

    @Test func guestRefusesAHostConnection() throws {
        let guest = try VsockTestGuest()
        try guest.offerBuffers(2)
        let stream = try guest.muxer.connect(port: 77)
        guest.device.processBackend()
        #expect(try guest.receive().count == 1)
        try guest.send(guest.header(.reset, from: 77, to: stream.hostPort))
        #expect(stream.phase == .closed(.refused))
        #expect(throws: VsockError.closed(reason: .refused)) { _ = try stream.read() }
        #expect(throws: VsockError.self) { try stream.write([1]) }
    }

    @Test func unknownPortsGetReset() throws {
        let guest = try VsockTestGuest()
        try guest.offerBuffers(8)
        try guest.send(guest.header(.request, from: 4000, to: 9999))
        try guest.send(guest.header(.readWrite, from: 4001, to: 1234), [1])
        try guest.send(guest.header(.reset, from: 4002, to: 1234))  // RST is never answered
        var datagram = guest.header(.request, from: 4003, to: 9999)
        datagram.type = 2  // SOCK_DGRAM is not served
        try guest.send(datagram)
        let resets = try guest.receive()
        #expect(resets.map(\.header.operation) == [.reset, .reset, .reset])
        #expect(resets.map(\.header.destinationPort) == [4000, 4001, 4003])
        #expect(resets.map(\.header.sourcePort) == [9999, 1234, 9999])
    }

    @Test func hostToGuestDataWaitsForGuestCredit() throws {
        let guest = try VsockTestGuest()
        let listener = try guest.muxer.listen(port: 1024)
        try guest.offerBuffers(12)
        try guest.send(guest.header(.request, from: 5000, to: 1024, bufferAllocation: 10))
        _ = try guest.receive()
        let stream = try #require(listener.accept())

        try stream.write(Array(0..<25))
        guest.device.processBackend()
        var packets = try guest.receive()
        #expect(packets.map(\.header.operation) == [.readWrite, .creditRequest])
        #expect(packets[0].payload == Array(0..<10))

        // The guest's application read 10 bytes: credit for 10 more.
        try guest.send(guest.header(.creditUpdate, from: 5000, to: 1024, bufferAllocation: 10, forwardCount: 10))
        packets = try guest.receive()
        #expect(packets.map(\.payload) == [Array(10..<20), []])
        #expect(packets.map(\.header.operation) == [.readWrite, .creditRequest])

        // A bigger buffer: the rest flows.
        try guest.send(guest.header(.creditUpdate, from: 5000, to: 1024, bufferAllocation: 100, forwardCount: 20))
        packets = try guest.receive()
        #expect(packets.map(\.payload) == [Array(20..<25)])
    }

    @Test func guestToHostDataIsBoundedByOurCredit() throws {
        let guest = try VsockTestGuest(muxer: VsockMuxer(bufferAllocation: 16))
        let listener = try guest.muxer.listen(port: 1024)
        try guest.offerBuffers(8)
        try guest.send(guest.header(.request, from: 5000, to: 1024))
        #expect(try guest.receive().first?.header.bufferAllocation == 16)
        let stream = try #require(listener.accept())

        // The guest asks for credit: we answer with our counters.
        try guest.send(guest.header(.creditRequest, from: 5000, to: 1024))
        let update = try guest.receive()
        #expect(update.map(\.header.operation) == [.creditUpdate])
        #expect(update.first?.header.forwardCount == 0)

        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), Array(repeating: 1, count: 10))
        #expect(try guest.receive().isEmpty)
        // Reading frees space the guest cannot see yet (6 of 16 left): a CREDIT_UPDATE follows.
        #expect(try stream.read().count == 10)
        guest.device.processBackend()
        let credit = try guest.receive()
        #expect(credit.map(\.header.operation) == [.creditUpdate])
        #expect(credit.first?.header.forwardCount == 10)

        // 16 bytes fit; one more overruns the credit and resets the connection.
        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), Array(repeating: 2, count: 16))
        try guest.send(guest.header(.readWrite, from: 5000, to: 1024), [3])
        #expect(try guest.receive().map(\.header.operation) == [.reset])
        #expect(try stream.read() == Array(repeating: 2, count: 16), "data received before the overrun stays readable")
        #expect(throws: VsockError.closed(reason: .protocolError)) { _ = try stream.read() }
    }

    @Test func deviceResetClosesEveryConnection() throws {
        let guest = try VsockTestGuest()
        let listener = try guest.muxer.listen(port: 1024)
        try guest.offerBuffers(4)
        try guest.send(guest.header(.request, from: 5000, to: 1024))
        let stream = try #require(listener.accept())
        guest.device.reset()
        #expect(stream.phase == .closed(.deviceReset))
        #expect(!guest.muxer.hasPendingPackets)
    }

    @Test func listenerPortsAreExclusive() throws {
        let muxer = VsockMuxer()
        let listener = try muxer.listen(port: 1024)
        #expect(throws: VsockError.portInUse(1024)) { _ = try muxer.listen(port: 1024) }
        listener.close()
        _ = try muxer.listen(port: 1024)
    }
}
