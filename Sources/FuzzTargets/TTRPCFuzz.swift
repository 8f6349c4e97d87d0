// ttrpc: the bytes a peer sends on a connection, through the real pipelines (frame decoder,
// encoder, connection handler) on an EmbeddedChannel. The client side is what the shim runs
// against the agent in the guest; the server side is what the shim runs for containerd and the
// agent runs for the shim. Input: u8 chunk size (0: all at once), then the stream bytes.
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import TTRPC

enum TTRPCFuzz {
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let chunk = Int(input.u8())
        let stream = input.rest()
        server(stream, chunk: chunk)
        client(stream, chunk: chunk)
    }

    /// A server connection with no services: every request is decoded, looked up and answered
    /// on the event loop (handlers that run would need a real loop).
    private static func server(_ stream: [UInt8], chunk: Int) {
        let channel = EmbeddedChannel()
        do {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()),
                ServerConnectionHandler(registry: ServiceRegistry(), calls: CallCounter()))
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/fuzz")).wait()
        } catch {
            preconditionFailure("ttrpc fuzz: cannot set up the server pipeline: \(error)")
        }
        feed(channel, stream, chunk: chunk)
        _ = try? channel.finish()
    }

    /// A client connection with three calls waiting (streams 1, 3, 5; one with a deadline);
    /// the input is what the server (the guest's agent) answers.
    private static func client(_ stream: [UInt8], chunk: Int) {
        let channel = EmbeddedChannel()
        let handler = ClientConnectionHandler()
        do {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(FrameDecoder()), MessageToByteHandler(FrameEncoder()), handler)
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/fuzz")).wait()
        } catch {
            preconditionFailure("ttrpc fuzz: cannot set up the client pipeline: \(error)")
        }
        let completed = NIOLockedValueBox(0)
        for (streamID, timeout) in [(UInt32(1), Duration?.none), (3, .seconds(5)), (5, nil)] {
            let promise = channel.eventLoop.makePromise(of: [UInt8].self)
            handler.start(streamID, request: [0x0a, 0x01, 0x73], timeout: timeout, promise: promise)
            promise.futureResult.whenComplete { _ in completed.withLockedValue { $0 += 1 } }
        }
        feed(channel, stream, chunk: chunk)
        _ = try? channel.finish()
        // Every call must be complete by now: answered, failed, or failed by the close.
        precondition(completed.withLockedValue { $0 } == 3, "ttrpc fuzz: a client call was left pending after close")
    }

    private static func feed(_ channel: EmbeddedChannel, _ stream: [UInt8], chunk: Int) {
        var start = 0
        let step = chunk == 0 ? max(stream.count, 1) : chunk
        while start < stream.count {
            let end = min(start + step, stream.count)
            _ = try? channel.writeInbound(ByteBuffer(bytes: stream[start..<end]))
            while let _ = try? channel.readOutbound(as: ByteBuffer.self) {}
            start = end
        }
    }

    // MARK: seeds

    static var seeds: [(name: String, bytes: [UInt8])] {
        let request = Protobuf.message([
            Protobuf.bytes(1, Array("containerd.task.v2.Task".utf8)),
            Protobuf.bytes(2, Array("Create".utf8)),
            Protobuf.bytes(3, Protobuf.bytes(1, Array("sandbox-1".utf8))),
            Protobuf.varint(4, 5_000_000_000),
            Protobuf.bytes(5, Protobuf.bytes(1, Array("containerd-namespace-ttrpc".utf8)) + Protobuf.bytes(2, Array("k8s.io".utf8))),
        ])
        let success = Protobuf.bytes(2, Protobuf.bytes(1, Array("ok".utf8)))
        let failure = Protobuf.bytes(1, Protobuf.varint(1, 5) + Protobuf.bytes(2, Array("container not found".utf8)))
        func frame(_ payload: [UInt8], stream: UInt32, type: UInt8) -> [UInt8] {
            var w = SeedWriter()
            w.raw(bigEndian(UInt32(payload.count)) + bigEndian(stream))
            w.u8(type)
            w.u8(0)
            w.raw(payload)
            return w.bytes
        }
        var oversized = bigEndian(UInt32(5 << 20)) + bigEndian(UInt32(7))
        oversized += [1, 0] + [UInt8](repeating: 0x41, count: 32)
        return [
            ("request", [0] + frame(request, stream: 1, type: 1)),
            ("request-chunked", [3] + frame(request, stream: 3, type: 1) + frame(request, stream: 2, type: 1)),
            ("responses", [0] + frame(success, stream: 1, type: 2) + frame(failure, stream: 3, type: 2) + frame([0xff], stream: 5, type: 2)),
            ("oversized", [0] + oversized),
            ("unknown-type", [1] + frame([1, 2, 3], stream: 9, type: 7)),
        ]
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * (3 - $0))) }
    }
}

/// Just enough protobuf encoding to write seed messages by hand.
enum Protobuf {
    static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        repeat {
            out.append(UInt8(v & 0x7f) | (v > 0x7f ? 0x80 : 0))
            v >>= 7
        } while v != 0
        return out
    }

    static func varint(_ field: UInt64, _ value: UInt64) -> [UInt8] { varint(field << 3) + varint(value) }
    static func bytes(_ field: UInt64, _ value: [UInt8]) -> [UInt8] { varint(field << 3 | 2) + varint(UInt64(value.count)) + value }
    static func message(_ fields: [[UInt8]]) -> [UInt8] { fields.flatMap { $0 } }
}
