// ttrpc framing: a 10-byte big-endian header, then the payload.
//   u32 payload length | u32 stream id | u8 type (1 request, 2 response) | u8 flags
// Payloads above 4 MiB are skipped unread and reported, so the peer can be answered ResourceExhausted.
import NIOCore

package enum FrameType: UInt8, Sendable {
    case request = 1
    case response = 2
}

package struct FrameHeader: Hashable, Sendable {
    static let size = 10
    /// ttrpc's messageLengthMax.
    static let maxPayload = 4 << 20

    package var length: UInt32
    package var streamID: UInt32
    /// Raw type byte: a peer may send types we do not know (ttrpc ignores those).
    package var type: UInt8
    package var flags: UInt8

    init(length: UInt32, streamID: UInt32, type: UInt8, flags: UInt8 = 0) {
        self.length = length
        self.streamID = streamID
        self.type = type
        self.flags = flags
    }

    init(length: Int, streamID: UInt32, type: FrameType) {
        self.init(length: UInt32(length), streamID: streamID, type: type.rawValue)
    }
}

/// What the reader hands up: a whole frame, or the header of one whose payload was too big.
package enum InboundFrame: Sendable {
    case frame(FrameHeader, payload: ByteBuffer)
    case oversized(FrameHeader)
}

/// A frame to send. The payload limit is checked by whoever builds it.
package struct OutboundFrame: Sendable {
    var streamID: UInt32
    var type: FrameType
    var payload: [UInt8]
}

/// The reader as a pure state machine over a byte buffer, so tests need no channel.
package struct FrameReader {
    let maxPayload: Int
    /// Bytes of an oversized payload still to skip.
    private var discarding = 0

    package init(maxPayload: Int = FrameHeader.maxPayload) {
        self.maxPayload = maxPayload
    }

    /// The next frame in `buffer`, consuming it; nil when more bytes are needed.
    package mutating func next(from buffer: inout ByteBuffer) -> InboundFrame? {
        while discarding > 0 {
            guard buffer.readableBytes > 0 else { return nil }
            let skipped = min(discarding, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: skipped)
            discarding -= skipped
        }
        guard buffer.readableBytes >= FrameHeader.size,
            let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self),
            let streamID = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .big, as: UInt32.self),
            let type = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt8.self),
            let flags = buffer.getInteger(at: buffer.readerIndex + 9, as: UInt8.self)
        else { return nil }
        let header = FrameHeader(length: length, streamID: streamID, type: type, flags: flags)
        if Int(length) > maxPayload {
            buffer.moveReaderIndex(forwardBy: FrameHeader.size)
            discarding = Int(length)
            return .oversized(header)
        }
        guard buffer.readableBytes >= FrameHeader.size + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameHeader.size)
        guard let payload = buffer.readSlice(length: Int(length)) else { return nil }
        return .frame(header, payload: payload)
    }
}

extension ByteBuffer {
    mutating func writeFrame(_ frame: OutboundFrame) {
        reserveCapacity(minimumWritableBytes: FrameHeader.size + frame.payload.count)
        writeInteger(UInt32(frame.payload.count), endianness: .big)
        writeInteger(frame.streamID, endianness: .big)
        writeInteger(frame.type.rawValue)
        writeInteger(UInt8(0))
        writeBytes(frame.payload)
    }
}

/// NIO adapter of `FrameReader`. A truncated frame at end of stream is dropped: the peer is gone.
package struct FrameDecoder: ByteToMessageDecoder {
    package typealias InboundOut = InboundFrame
    private var reader: FrameReader

    package init(maxPayload: Int = FrameHeader.maxPayload) {
        reader = FrameReader(maxPayload: maxPayload)
    }

    package mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = reader.next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    package mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while let frame = reader.next(from: &buffer) {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}

package struct FrameEncoder: MessageToByteEncoder {
    package typealias OutboundIn = OutboundFrame

    package init() {}

    package func encode(data: OutboundFrame, out: inout ByteBuffer) throws {
        out.writeFrame(data)
    }
}
