// A raw byte-level peer over a real Unix socket, for feeding the server hand-made (and broken) frames.
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import TTRPC

/// Collects every byte the server sends; frames are cut with the same `FrameReader` under test.
final class RawPeer: Sendable {
    let channel: any Channel
    private let state: Inbox_Box

    init(path: String) async throws {
        let box = Inbox_Box()
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(InboxWriter(box))
                }
            }
            .connect(unixDomainSocketPath: path).get()
        state = box
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Sends one frame with a raw header; `length` overrides the header's length field.
    func send(streamID: UInt32, type: UInt8 = 1, payload: [UInt8], length: UInt32? = nil) async throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(length ?? UInt32(payload.count), endianness: .big)
        buffer.writeInteger(streamID, endianness: .big)
        buffer.writeInteger(type)
        buffer.writeInteger(UInt8(0))
        buffer.writeBytes(payload)
        try await channel.writeAndFlush(buffer)
    }

    /// The next whole frame from the server; nil once the server has closed the connection.
    func readFrame(timeout: Duration = .seconds(5)) async throws -> (FrameHeader, [UInt8])? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let next: InboundFrame?? = state.inbox.withLock { inbox in
                if let frame = inbox.reader.next(from: &inbox.buffer) { return .some(frame) }
                return inbox.closed ? .some(nil) : nil
            }
            switch next {
            case .some(.some(.frame(let header, let payload))):
                return (header, Array(payload.readableBytesView))
            case .some(.some(.oversized(let header))):
                throw TTRPCError(.resourceExhausted, "server sent an oversized frame: \(header)")
            case .some(.none):
                return nil
            case .none:
                guard ContinuousClock.now < deadline else {
                    throw TTRPCError(.deadlineExceeded, "no frame from the server within \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    /// Reads the next frame and decodes it as a ttrpc Response.
    func readResponse(timeout: Duration = .seconds(5)) async throws -> (streamID: UInt32, response: Ttrpc_Response)? {
        guard let (header, payload) = try await readFrame(timeout: timeout) else { return nil }
        #expect(header.type == FrameType.response.rawValue)
        return (header.streamID, try Ttrpc_Response(serializedBytes: payload))
    }

    /// Waits until the server closes the connection, failing after `timeout`.
    func expectClosed(timeout: Duration = .seconds(5)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !state.inbox.withLock({ $0.closed }) {
            guard ContinuousClock.now < deadline else {
                throw TTRPCError(.deadlineExceeded, "server did not close within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    func close() async {
        try? await channel.close()
    }
}

/// The bytes received so far, shared between the event loop and the test.
private final class Inbox_Box: Sendable {
    let inbox = Mutex(RawPeer.InboxState())
}

extension RawPeer {
    fileprivate struct InboxState {
        var buffer = ByteBuffer()
        var reader = FrameReader()
        var closed = false
    }
}

private final class InboxWriter: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let box: Inbox_Box

    init(_ box: Inbox_Box) {
        self.box = box
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        _ = box.inbox.withLock { $0.buffer.writeBuffer(&bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        box.inbox.withLock { $0.closed = true }
        context.fireChannelInactive()
    }
}
