import Devices
import GuestMemory
import Testing
import VhostUser
import VirtIO
import VirtIOTestSupport

@Suite struct VhostUserSessionTests {
    let platform = FakePlatform()
    let muxer = VsockMuxer()

    func makeSession() -> (VhostUserSession, VsockDevice) {
        let device = VsockDevice(guestCID: 3, backend: muxer)
        return (VhostUserSession(device: device, queueCount: 2, platform: platform), device)
    }

    /// Feeds recorded messages, handing out fresh fake fds; returns the replies by position.
    func replay(_ recorded: ArraySlice<RecordedMessage>, into session: VhostUserSession, nextFD: inout Int32) throws -> [Int: VhostUserMessage] {
        var replies: [Int: VhostUserMessage] = [:]
        for (position, record) in zip(recorded.indices, recorded) {
            let fds = (0..<record.fdCount).map { _ in
                defer { nextFD += 1 }
                return nextFD
            }
            let message = VhostUserMessage(request: record.message.request, flags: record.message.flags, payload: record.message.payload)
            if let reply = try session.handle(message, fds: fds) { replies[position] = reply }
        }
        return replies
    }

    @Test func replaysQEMUsVsockStartupServesTrafficAndStops() throws {
        let recorded = parseRecording(recordedQEMUVsockSequence)
        #expect(recorded.count == 33)
        var nextFD: Int32 = 100
        let givenFDs: [Int32]
        do {
            let (session, device) = makeSession()
            // Up to and including both SET_VRING_ENABLE(1).
            let setup = try replay(recorded[0..<25], into: session, nextFD: &nextFD)
            #expect(setup.keys.sorted() == [0, 1, 3, 5, 10])
            #expect(setup[0]?.payload == bytes(UInt64(VirtioFeature.common | VhostUserFeature.protocolFeatures)))
            #expect(setup[0]?.flags == 5)
            #expect(setup[1]?.payload == bytes(UInt64(0x209)))
            #expect(setup[3]?.payload == bytes(UInt64(2)))
            #expect(setup[10]?.payload == [0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], "GET_CONFIG: guest_cid 3")
            #expect(session.hasOwner && session.protocolFeatures == 0x201)
            #expect(device.ackedFeatures == 0x3000_0000)
            #expect(platform.mapped.count == 1 && platform.mapped[0].count == 2)
            #expect(session.isActive)
            // Ring addresses translated from QEMU's virtual addresses into guest physical ones.
            #expect(device.queues[0].size == 1024 && device.queues[1].size == 1024)
            #expect(device.queues[0].descriptorTable == GuestAddress(0x274_8000))
            #expect(device.queues[0].availableRing == GuestAddress(0x274_c000))
            #expect(device.queues[0].usedRing == GuestAddress(0x274_d000))
            #expect(device.queues[1].descriptorTable == GuestAddress(0x276_0000))

            // Traffic, as the guest driver would make it, through the session's kicks.
            let memory = try #require(platform.memories.last)
            let rx = try driver(for: device.queues[0], memory: memory, data: GuestAddress(0x40_0000))
            let tx = try driver(for: device.queues[1], memory: memory, data: GuestAddress(0x50_0000))
            let listener = try muxer.listen(port: 1024)
            try rx.add([.writable(4096 + 44)])
            session.kick(queue: 0)
            let request = VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 7000, destinationPort: 1024, op: .request, bufferAllocation: 4096)
            try tx.add([.readable(request.bytes)])
            session.kick(queue: 1)
            #expect(try tx.takeUsed().count == 1)
            let used = try rx.takeUsed()
            #expect(used.count == 1 && used.first?.length == 44)
            #expect(listener.accept() != nil)
            // The call fds of the second SET_VRING_CALL pair (messages 25, 26) are current.
            #expect(platform.lines.values.reduce(0) { $0 + $1.count } >= 2)

            // Stop: SET_VRING_ENABLE(0) x2, GET_VRING_BASE x2 (reply: where each ring stands), new calls.
            let stop = try replay(recorded[25...], into: session, nextFD: &nextFD)
            #expect(!session.isActive)
            #expect(stop[29]?.payload == VringState(index: 0, num: 1).bytes)
            #expect(stop[30]?.payload == VringState(index: 1, num: 1).bytes)
            givenFDs = Array(100..<nextFD)
        }
        // Every fd the frontend sent was closed exactly once, when replaced or when the session ended.
        #expect(platform.closed.sorted() == givenFDs)
    }

    @Test func refusesMalformedRequestsWithoutTrapping() throws {
        let (session, _) = makeSession()
        func expectError(_ error: VhostUserError, _ message: VhostUserMessage, fds: [Int32] = [], sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(throws: error, sourceLocation: sourceLocation) { _ = try session.handle(message, fds: fds) }
        }
        expectError(.unsupportedRequest(99), VhostUserMessage(request: 99), fds: [7])
        #expect(platform.closed == [7], "fds of a refused message are closed")
        expectError(.badPayloadSize(request: .setVringNum, size: 4), VhostUserMessage(.setVringNum, payload: [0, 0, 0, 0]))
        expectError(.badQueueIndex(request: .setVringNum, index: 5), VhostUserMessage(.setVringNum, payload: VringState(index: 5, num: 8).bytes))
        expectError(.unofferedFeatures(request: .setFeatures, bits: 1 << 40), VhostUserMessage(.setFeatures, payload: bytes(UInt64(1 << 40))))
        expectError(.unofferedFeatures(request: .setProtocolFeatures, bits: 1 << 5), VhostUserMessage(.setProtocolFeatures, payload: bytes(UInt64(1 << 5))))
        expectError(.badMemoryTable("9 regions (1...8)"), VhostUserMessage(.setMemTable, payload: bytes(UInt32(9)) + [0, 0, 0, 0]))
        let oneRegion = bytes(UInt32(1)) + [0, 0, 0, 0] + bytes(UInt64(0)) + bytes(UInt64(0x10000)) + bytes(UInt64(0x7000_0000)) + bytes(UInt64(0))
        expectError(.badFDCount(request: .setMemTable, expected: 1, received: 0), VhostUserMessage(.setMemTable, payload: oneRegion))
        let overflowing = bytes(UInt32(1)) + [0, 0, 0, 0] + bytes(UInt64.max) + bytes(UInt64(2)) + bytes(UInt64(0)) + bytes(UInt64(0))
        expectError(.badMemoryTable("region 0 is empty or overflows"), VhostUserMessage(.setMemTable, payload: overflowing), fds: [8])
        platform.mapShouldFail = true
        #expect(throws: VhostUserError.self) { _ = try session.handle(VhostUserMessage(.setMemTable, payload: oneRegion), fds: [9]) }
        platform.mapShouldFail = false
        #expect(try session.handle(VhostUserMessage(.setMemTable, payload: oneRegion), fds: [10]) == nil)
        var address = bytes(UInt32(0)) + bytes(UInt32(0)) + bytes(UInt64(0x1234)) + bytes(UInt64(0x7000_1000)) + bytes(UInt64(0x7000_2000))
        address += bytes(UInt64(0))
        expectError(.unmappedAddress(0x1234), VhostUserMessage(.setVringAddr, payload: address))
        expectError(.badConfigRange(offset: 4, size: 8), VhostUserMessage(.getConfig, payload: bytes(UInt32(4)) + bytes(UInt32(8)) + bytes(UInt32(0)) + Array(repeating: 0, count: 8)))
        expectError(.badPayloadSize(request: .getConfig, size: 14), VhostUserMessage(.getConfig, payload: bytes(UInt32(0)) + bytes(UInt32(8)) + bytes(UInt32(0)) + [0, 0]))
        expectError(.badFDCount(request: .setVringKick, expected: 1, received: 2), VhostUserMessage(.setVringKick, payload: bytes(UInt64(0))), fds: [11, 12])
        expectError(.badFDCount(request: .setVringCall, expected: 0, received: 1), VhostUserMessage(.setVringCall, payload: bytes(UInt64(0x100))), fds: [13])
        #expect(platform.closed.sorted() == [7, 8, 9, 10, 11, 12, 13])
        #expect(!session.isActive)
    }

    @Test func needReplyGetsAnAckOnlyWithReplyAck() throws {
        let (session, _) = makeSession()
        let owner = VhostUserMessage(.setOwner, flags: VhostUserFlag.version | VhostUserFlag.needReply)
        #expect(try session.handle(owner) == nil)
        _ = try session.handle(VhostUserMessage(.setProtocolFeatures, payload: bytes(VhostUserFeature.replyAck)))
        #expect(try session.handle(owner)?.payload == bytes(UInt64(0)))
        let bad = VhostUserMessage(.setVringNum, flags: VhostUserFlag.version | VhostUserFlag.needReply, payload: [1])
        #expect(session.reply(to: bad, error: .badPayloadSize(request: .setVringNum, size: 1))?.payload == bytes(UInt64(1)))
    }

    @Test func invalidRingSizeKeepsTheDeviceStopped() throws {
        let (session, device) = makeSession()
        let region = bytes(UInt32(1)) + [0, 0, 0, 0] + bytes(UInt64(0)) + bytes(UInt64(0x10_0000)) + bytes(UInt64(0x7000_0000)) + bytes(UInt64(0))
        _ = try session.handle(VhostUserMessage(.setMemTable, payload: region), fds: [1])
        for index in UInt32(0)..<2 {
            _ = try session.handle(VhostUserMessage(.setVringNum, payload: VringState(index: index, num: 3).bytes))
            var address = bytes(index) + bytes(UInt32(0)) + bytes(UInt64(0x7000_0000 + 0x10000 * UInt64(index)))
            address += bytes(UInt64(0x7000_2000 + 0x10000 * UInt64(index))) + bytes(UInt64(0x7000_1000 + 0x10000 * UInt64(index))) + bytes(UInt64(0))
            _ = try session.handle(VhostUserMessage(.setVringAddr, payload: address))
            _ = try session.handle(VhostUserMessage(.setVringKick, payload: bytes(UInt64(index))), fds: [Int32(10 + index)])
        }
        // No protocol features negotiated: rings are enabled by their kick fd; size 3 is invalid.
        #expect(!session.isActive && !device.queues[0].isReady)
        session.kick(queue: 0)
        _ = try session.handle(VhostUserMessage(.setVringNum, payload: VringState(index: 0, num: 4).bytes))
        _ = try session.handle(VhostUserMessage(.setVringNum, payload: VringState(index: 1, num: 4).bytes))
        #expect(session.isActive)
        _ = try session.handle(VhostUserMessage(.resetOwner))
        #expect(!session.isActive && platform.closed.sorted() == [1, 10, 11])
    }

    private func driver(for queue: Queue, memory: HeapGuestMemory, data: GuestAddress) throws -> FakeVirtqueueDriver {
        try FakeVirtqueueDriver(
            memory: memory, size: queue.size, descriptorTable: queue.descriptorTable, availableRing: queue.availableRing,
            usedRing: queue.usedRing, dataStart: data, dataSize: 0x10000, startIndex: queue.nextAvailable)
    }
}

func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
