// The client against a server that misbehaves (the guest agent is not trusted): garbage,
// oversized and unsolicited responses fail only the call they name, and a hang-up fails the rest.
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import TTRPC

/// Accepts one connection and lets the test write whatever bytes it likes to it. It counts the
/// request frames it receives, so a test answers a call only after its request has arrived (an
/// answer sent earlier is, correctly, an unsolicited frame the client drops).
final class RawServer: Sendable {
    let directory: String
    let path: String
    private let listener: any Channel

    private final class Keep: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let box: SlotBox
        init(_ box: SlotBox) { self.box = box }

        /// Counts whole frames (10-byte header with a big-endian payload length, then the payload).
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            box.received.withLock { state in
                state.pending += bytes
                while state.pending.count >= 10 {
                    let length = state.pending[0..<4].reduce(0) { $0 << 8 | Int($1) }
                    guard state.pending.count >= 10 + length else { break }
                    state.pending.removeFirst(10 + length)
                    state.frames += 1
                }
            }
        }
    }

    init() async throws {
        directory = try makeTemporaryDirectory()
        path = directory + "/raw.sock"
        let box = SlotBox()
        listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                box.channel.withLock { $0 = channel }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Keep(box))
                }
            }
            .bind(unixDomainSocketPath: path).get()
        self.box = box
    }

    private let box: SlotBox

    private final class SlotBox: Sendable {
        let channel = Mutex<(any Channel)?>(nil)
        let received = Mutex<(pending: [UInt8], frames: Int)>(([], 0))
    }

    /// Waits until `count` request frames have arrived in all.
    func waitForRequests(_ count: Int) async throws {
        let end = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < end {
            if box.received.withLock({ $0.frames }) >= count { return }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TTRPCError(.deadlineExceeded, "request \(count) never arrived")
    }

    func connection() async throws -> any Channel {
        let end = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < end {
            if let channel = box.channel.withLock({ $0 }) { return channel }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw TTRPCError(.deadlineExceeded, "no connection accepted")
    }

    func send(_ bytes: [UInt8]) async throws {
        try await connection().writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func sendFrame(streamID: UInt32, type: FrameType = .response, payload: [UInt8]) async throws {
        var buffer = ByteBuffer()
        buffer.writeFrame(OutboundFrame(streamID: streamID, type: type, payload: payload))
        try await connection().writeAndFlush(buffer)
    }

    func stop() async {
        if let channel = box.channel.withLock({ $0 }) {
            try? await channel.close()
        }
        try? await listener.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension SocketTests {
    @Suite struct HostileServer {
        @Test func misbehavingServerFailsOnlyTheCallsItNames() async throws {
            let server = try await RawServer()
            let client = try await TTRPCClient.connect(unixSocketPath: server.path)
            func call() -> Task<[UInt8], any Error> {
                Task { try await client.call(service: "s", method: "m", payload: []) }
            }

            // Stream 1: an unsolicited response for stream 99 is dropped; garbage for stream 1 fails it.
            let first = call()
            try await server.waitForRequests(1)
            try await server.sendFrame(streamID: 99, payload: Ttrpc_Response.encoded(.success([1])))
            try await server.sendFrame(streamID: 1, payload: [0xFF, 0xFF, 0xFF])
            #expect(await failureCode { try await first.value } == .internal)

            // Stream 3: an oversized response is skipped and fails that call only.
            let second = call()
            try await server.waitForRequests(2)
            var oversized = ByteBuffer()
            oversized.writeInteger(UInt32(FrameHeader.maxPayload + 1), endianness: .big)
            oversized.writeInteger(UInt32(3), endianness: .big)
            oversized.writeBytes([2, 0])
            try await server.send(Array(oversized.readableBytesView) + [UInt8](repeating: 0x41, count: FrameHeader.maxPayload + 1))
            #expect(await failureCode { try await second.value } == .resourceExhausted)

            // Stream 5: a request frame from the server is ignored, then a good answer arrives.
            let third = call()
            try await server.waitForRequests(3)
            try await server.sendFrame(streamID: 5, type: .request, payload: [0x0A, 0x00])
            try await server.sendFrame(streamID: 5, payload: Ttrpc_Response.encoded(.success([7, 7])))
            #expect(try await third.value == [7, 7])

            // Stream 7: the server hangs up mid-frame; the pending call fails, later calls too.
            let fourth = call()
            try await server.waitForRequests(4)
            try await server.send([0, 0, 0, 9, 0, 0, 0, 7, 2])
            try await server.connection().close()
            #expect(await failureCode { try await fourth.value } == .unavailable)
            #expect(await failureCode { try await call().value } == .unavailable)
            await client.close()
            await server.stop()
        }

        @Test func unansweredCallTimesOut() async throws {
            let server = try await RawServer()
            let client = try await TTRPCClient.connect(unixSocketPath: server.path)
            let code = await failureCode {
                try await client.call(service: "s", method: "m", payload: [], options: TTRPCCallOptions(timeout: .milliseconds(50)))
            }
            #expect(code == .deadlineExceeded)
            // A late answer for the timed-out call is dropped; the connection keeps working.
            try await server.sendFrame(streamID: 1, payload: Ttrpc_Response.encoded(.success([1])))
            let next = Task { try await client.call(service: "s", method: "m", payload: []) }
            try await server.waitForRequests(2)
            try await server.sendFrame(streamID: 3, payload: Ttrpc_Response.encoded(.success([3])))
            #expect(try await next.value == [3])
            await client.close()
            await server.stop()
        }
    }
}
