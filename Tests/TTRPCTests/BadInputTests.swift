// Hostile and broken peers against a real server socket: each is answered or closed cleanly,
// the server keeps serving, and no descriptor or call is left behind.
import Foundation
import SwiftProtobuf
import Testing

@testable import TTRPC

func requestBytes(service: String = "test.Echo", method: String, payload: [UInt8] = [], timeoutNano: Int64 = 0) throws -> [UInt8] {
    var request = Ttrpc_Request()
    request.service = service
    request.method = method
    request.payload = Data(payload)
    request.timeoutNano = timeoutNano
    return try request.serializedBytes()
}

/// The status a raw response carries (`ok` when none).
func statusCode(_ response: Ttrpc_Response) -> TTRPCStatusCode {
    TTRPCStatusCode(rawValue: response.hasStatus ? response.status.code : 0)
}

extension SocketTests {
    @Suite struct BadInput {
        /// After each hostile exchange: a fresh, well-behaved client is still served.
        private func expectStillServing(_ fixture: Fixture) async throws {
            let client = try await fixture.client()
            #expect(try await client.call(service: "test.Echo", method: "Raw", payload: [4, 5]) == [5, 4])
            await client.close()
        }

        @Test func evenStreamIDIsInvalidArgument() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 2, payload: try requestBytes(method: "Raw", payload: [1]))
            let answer = try #require(try await peer.readResponse())
            #expect(answer.streamID == 2)
            #expect(statusCode(answer.response) == .invalidArgument)
            // The connection is still usable with an odd id.
            try await peer.send(streamID: 3, payload: try requestBytes(method: "Raw", payload: [1, 2]))
            let good = try #require(try await peer.readResponse())
            #expect(good.streamID == 3 && Array(good.response.payload) == [2, 1])
            await peer.close()
            await fixture.stop()
        }

        @Test func garbageEnvelopeIsInvalidArgument() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, payload: [0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
            let answer = try #require(try await peer.readResponse())
            #expect(answer.streamID == 1 && statusCode(answer.response) == .invalidArgument)
            await peer.close()
            try await expectStillServing(fixture)
            await fixture.stop()
        }

        @Test func garbageMethodPayloadIsInvalidArgument() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 5, payload: try requestBytes(method: "Echo", payload: [0x0A, 0x7F, 0x01]))
            let answer = try #require(try await peer.readResponse())
            #expect(answer.streamID == 5 && statusCode(answer.response) == .invalidArgument)
            await peer.close()
            await fixture.stop()
        }

        @Test func unknownServiceAndMethodAreUnimplemented() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, payload: try requestBytes(service: "no.Such", method: "Raw"))
            try await peer.send(streamID: 3, payload: try requestBytes(method: "NoSuch"))
            var codes: [UInt32: TTRPCStatusCode] = [:]
            for _ in 0..<2 {
                let answer = try #require(try await peer.readResponse())
                codes[answer.streamID] = statusCode(answer.response)
            }
            #expect(codes == [1: .unimplemented, 3: .unimplemented])
            await peer.close()
            await fixture.stop()
        }

        @Test func oversizedFrameIsDiscardedAndAnsweredResourceExhausted() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            let length = FrameHeader.maxPayload + 1
            try await peer.send(streamID: 7, payload: [UInt8](repeating: 0x55, count: length))
            try await peer.send(streamID: 9, payload: try requestBytes(method: "Raw", payload: [1, 2, 3]))
            let first = try #require(try await peer.readResponse())
            #expect(first.streamID == 7 && statusCode(first.response) == .resourceExhausted)
            let second = try #require(try await peer.readResponse())
            #expect(second.streamID == 9 && Array(second.response.payload) == [3, 2, 1])
            await peer.close()
            await fixture.stop()
        }

        @Test func hugeLengthThenHangUpLeavesNothingBehind() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, payload: [1, 2, 3], length: UInt32.max)
            let answer = try #require(try await peer.readResponse())
            #expect(statusCode(answer.response) == .resourceExhausted)
            await peer.close()
            try await fixture.probe.waitUntil("the connection to be dropped") { fixture.server.connectionCount == 0 }
            try await expectStillServing(fixture)
            await fixture.stop()
        }

        @Test func truncatedFrameThenHangUp() async throws {
            let fixture = try await Fixture()
            for cut in [3, 10, 40] {
                let peer = try await fixture.raw()
                let frame = golden("00000030 00000001 01 00") + [UInt8](repeating: 0, count: 48)
                try await peer.send(Array(frame.prefix(cut)))
                await peer.close()
            }
            try await fixture.probe.waitUntil("the connections to be dropped") { fixture.server.connectionCount == 0 }
            try await expectStillServing(fixture)
            await fixture.stop()
        }

        @Test func nonRequestFramesAreIgnored() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, type: 2, payload: [0x12, 0x00])
            try await peer.send(streamID: 3, type: 9, payload: [])
            try await peer.send(streamID: 5, payload: try requestBytes(method: "Raw", payload: [7, 8]))
            let answer = try #require(try await peer.readResponse())
            #expect(answer.streamID == 5 && Array(answer.response.payload) == [8, 7])
            await peer.close()
            await fixture.stop()
        }

        @Test func serverDeadlineFromTimeoutNano() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, payload: try requestBytes(method: "Block", timeoutNano: 50_000_000))
            let answer = try #require(try await peer.readResponse())
            #expect(answer.streamID == 1 && statusCode(answer.response) == .deadlineExceeded)
            try await fixture.probe.waitUntil("the handler to be cancelled") { fixture.probe.cancelled.withLock { $0 } == 1 }
            await peer.close()
            await fixture.stop()
        }

        @Test func extremeTimeoutsAreHandled() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            // Int64.max ns (about 292 years) is a deadline that never fires; a negative one means none.
            try await peer.send(streamID: 1, payload: try requestBytes(method: "Raw", payload: [1, 2], timeoutNano: .max))
            try await peer.send(streamID: 3, payload: try requestBytes(method: "Raw", payload: [3, 4], timeoutNano: -5))
            var payloads: [UInt32: [UInt8]] = [:]
            for _ in 0..<2 {
                let answer = try #require(try await peer.readResponse())
                #expect(statusCode(answer.response) == .ok)
                payloads[answer.streamID] = Array(answer.response.payload)
            }
            #expect(payloads == [1: [2, 1], 3: [4, 3]])
            await peer.close()
            await fixture.stop()
        }

        @Test func droppedServerAndClientCloseTheirSockets() async throws {
            let directory = try makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/dropped.sock"
            let probe = Probe()
            do {
                let server = TTRPCServer()
                server.register(testService(probe))
                try await server.listen(unixSocketPath: path)
                let client = try await TTRPCClient.connect(unixSocketPath: path)
                #expect(try await client.call(service: "test.Echo", method: "Raw", payload: [1]) == [1])
                // Neither is closed explicitly: both go out of scope here.
            }
            try await probe.waitUntil("the dropped server's sockets to close") {
                let table = (try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8)) ?? ""
                return !table.split(separator: "\n").contains { $0.hasSuffix(" " + path) }
            }
        }

        @Test func reusedInFlightStreamIDIsRefused() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, payload: try requestBytes(method: "Block"))
            try await fixture.probe.waitUntil("the call to start") { fixture.probe.started.withLock { $0 } == 1 }
            try await peer.send(streamID: 1, payload: try requestBytes(method: "Raw"))
            let answer = try #require(try await peer.readResponse())
            #expect(answer.streamID == 1 && statusCode(answer.response) == .invalidArgument)
            await peer.close()
            await fixture.stop()
        }

        @Test func clientDisconnectingMidCallCancelsTheHandler() async throws {
            let fixture = try await Fixture()
            let peer = try await fixture.raw()
            try await peer.send(streamID: 1, payload: try requestBytes(method: "Block"))
            try await fixture.probe.waitUntil("the call to start") { fixture.probe.started.withLock { $0 } == 1 }
            #expect(fixture.server.activeCallCount == 1)
            await peer.close()
            try await fixture.probe.waitUntil("the handler to be cancelled") { fixture.probe.cancelled.withLock { $0 } == 1 }
            try await fixture.probe.waitUntil("no call in flight") { fixture.server.activeCallCount == 0 }
            try await fixture.probe.waitUntil("the connection to be dropped") { fixture.server.connectionCount == 0 }
            try await expectStillServing(fixture)
            await fixture.stop()
        }

        /// All of the above in one run, counting descriptors and server sockets before and after.
        @Test func hostilePeersLeakNothing() async throws {
            // Warm up the event loops so their own descriptors are in the baseline.
            let warmup = try await Fixture()
            try await expectStillServing(warmup)
            await warmup.stop()
            let before = try openDescriptorCount()

            let fixture = try await Fixture()
            for round in 0..<20 {
                let peer = try await fixture.raw()
                switch round % 5 {
                case 0: try await peer.send(streamID: 1, payload: [0xFF, 0xFF])
                case 1: try await peer.send(streamID: 2, payload: try requestBytes(method: "Raw"))
                case 2: try await peer.send(streamID: 3, payload: [], length: UInt32.max)
                case 3: try await peer.send(Array(golden("00000030 00000001 01").prefix(5)))
                default: try await peer.send(streamID: 5, payload: try requestBytes(method: "Block"))
                }
                await peer.close()
            }
            let clients = try await withThrowingTaskGroup(of: TTRPCClient.self) { group in
                for _ in 0..<10 {
                    group.addTask { try await fixture.client() }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for client in clients {
                #expect(try await client.call(service: "test.Echo", method: "Raw", payload: [1]) == [1])
                await client.close()
            }
            try await fixture.probe.waitUntil("every connection to be dropped") { fixture.server.connectionCount == 0 }
            try await fixture.probe.waitUntil("no call in flight") { fixture.server.activeCallCount == 0 }
            try await fixture.probe.waitUntil("server sockets to close") { ((try? fixture.serverSockets()) ?? 0) <= 1 }
            #expect(try fixture.serverSockets() == 1)  // only the listener
            await fixture.stop()
            #expect(try fixture.serverSockets() == 0)

            try await fixture.probe.waitUntil("descriptors back to \(before)") { ((try? openDescriptorCount()) ?? .max) <= before }
            #expect(try openDescriptorCount() == before)
        }
    }
}
