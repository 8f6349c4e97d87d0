import Testing
import VhostUser

@Suite struct VhostUserCodecTests {
    @Test func encodesHeaderLittleEndian() {
        #expect(VhostUserMessage(.getFeatures).bytes == [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        let reply = VhostUserMessage(.getQueueNum).reply([2, 0, 0, 0, 0, 0, 0, 0])
        #expect(reply.bytes == [17, 0, 0, 0, 5, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        #expect(VhostUserMessage(.setOwner, flags: 0x9).needsReply)
    }

    @Test func decodesAStreamInArbitraryChunks() throws {
        let messages = [
            VhostUserMessage(.getFeatures),
            VhostUserMessage(.setVringNum, payload: [0, 0, 0, 0, 0, 4, 0, 0]),
            VhostUserMessage(request: 99, payload: [1, 2, 3]),
        ]
        let stream = messages.flatMap(\.bytes)
        for chunk in [1, 5, 12, stream.count] {
            var decoder = VhostUserDecoder()
            var decoded: [VhostUserMessage] = []
            for start in stride(from: 0, to: stream.count, by: chunk) {
                decoder.append(stream[start..<min(start + chunk, stream.count)])
                while let message = try decoder.next() { decoded.append(message) }
            }
            #expect(decoded == messages, "chunk size \(chunk)")
        }
    }

    @Test func refusesBrokenHeaders() throws {
        var badVersion = VhostUserDecoder()
        badVersion.append([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0])
        #expect(throws: VhostUserError.badVersion(flags: 2)) { _ = try badVersion.next() }

        var huge = VhostUserDecoder()
        huge.append([5, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
        #expect(throws: VhostUserError.payloadTooLarge(request: 5, size: .max)) { _ = try huge.next() }

        var partial = VhostUserDecoder()
        partial.append([8, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 2])
        #expect(try partial.next() == nil, "waits for the rest of the payload")
    }
}
