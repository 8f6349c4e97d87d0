// Golden bytes of the ttrpc framing and envelope, and the frame reader on its own.
import NIOCore
import SwiftProtobuf
import Testing

@testable import TTRPC

/// Hex with optional spaces and `"text"` runs (the notation of the reference doc) to bytes.
func golden(_ notation: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var parts = notation.split(separator: "\"", omittingEmptySubsequences: false).makeIterator()
    var quoted = false
    while let part = parts.next() {
        if quoted {
            bytes += Array(part.utf8)
        } else {
            let hex = part.filter { !$0.isWhitespace && $0 != "|" }
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                bytes.append(UInt8(hex[index..<next], radix: 16)!)
                index = next
            }
        }
        quoted.toggle()
    }
    return bytes
}

/// containerd's Connect{id:"test1"} call in namespace default, stream 1.
let connectFrame = golden(
    #"00000052 00000001 01 00 | 0a17"containerd.task.v2.Task" 1207"Connect" 1a07 0a05"test1" 2a25 0a1a"containerd-namespace-ttrpc" 1207"default""#
)

@Suite struct FramingTests {
    @Test func goldenConnectRequestEncodes() throws {
        var options = TTRPCCallOptions()
        options.metadata.add("containerd-namespace-ttrpc", "default")
        let request = Ttrpc_Request(
            service: "containerd.task.v2.Task", method: "Connect", payload: golden(#"0a05"test1""#), options: options)
        var buffer = ByteBuffer()
        buffer.writeFrame(OutboundFrame(streamID: 1, type: .request, payload: try request.serializedBytes()))
        #expect(Array(buffer.readableBytesView) == connectFrame)
        #expect(connectFrame.count == 10 + 0x52)
    }

    @Test func goldenConnectRequestDecodes() throws {
        var buffer = ByteBuffer(bytes: connectFrame)
        var reader = FrameReader()
        guard case .frame(let header, let payload)? = reader.next(from: &buffer) else {
            Issue.record("no frame")
            return
        }
        #expect(header == FrameHeader(length: 0x52, streamID: 1, type: 1, flags: 0))
        let request = try Ttrpc_Request(serializedBytes: Array(payload.readableBytesView))
        #expect(request.service == "containerd.task.v2.Task")
        #expect(request.method == "Connect")
        #expect(Array(request.payload) == golden(#"0a05"test1""#))
        #expect(request.timeoutNano == 0)
        #expect(TTRPCMetadata(wire: request.metadata) == ["containerd-namespace-ttrpc": "default"])
        #expect(buffer.readableBytes == 0)
    }

    @Test func frameArrivingByteByByteIsReassembled() {
        var reader = FrameReader()
        var buffer = ByteBuffer()
        var frames: [InboundFrame] = []
        for byte in connectFrame + connectFrame {
            buffer.writeInteger(byte)
            if let frame = reader.next(from: &buffer) {
                frames.append(frame)
            }
        }
        #expect(frames.count == 2)
    }

    @Test func oversizedPayloadIsSkippedAndReported() {
        var reader = FrameReader(maxPayload: 8)
        var buffer = ByteBuffer(bytes: golden("00000010 00000003 01 00") + [UInt8](repeating: 0xAA, count: 16))
        buffer.writeBytes(golden("00000002 00000005 01 00 BEEF"))
        guard case .oversized(let header)? = reader.next(from: &buffer) else {
            Issue.record("oversized frame not reported")
            return
        }
        #expect(header.streamID == 3 && header.length == 16)
        guard case .frame(let next, let payload)? = reader.next(from: &buffer) else {
            Issue.record("frame after the oversized one lost")
            return
        }
        #expect(next.streamID == 5)
        #expect(Array(payload.readableBytesView) == [0xBE, 0xEF])
    }

    @Test func oversizedPayloadArrivingInPiecesIsSkipped() {
        var reader = FrameReader(maxPayload: 4)
        var buffer = ByteBuffer(bytes: golden("00000006 00000001 01 00 0102"))
        guard case .oversized? = reader.next(from: &buffer) else {
            Issue.record("oversized frame not reported")
            return
        }
        #expect(reader.next(from: &buffer) == nil)
        buffer.writeBytes(golden("030405 06 00000000 00000007 02 00"))
        guard case .frame(let header, let payload)? = reader.next(from: &buffer) else {
            Issue.record("frame after the skipped payload lost")
            return
        }
        #expect(header == FrameHeader(length: 0, streamID: 7, type: 2, flags: 0))
        #expect(payload.readableBytes == 0)
    }

    @Test func maximumPayloadIsAccepted() {
        var reader = FrameReader()
        var buffer = ByteBuffer()
        buffer.writeFrame(OutboundFrame(streamID: 1, type: .request, payload: [UInt8](repeating: 1, count: FrameHeader.maxPayload)))
        guard case .frame(let header, _)? = reader.next(from: &buffer) else {
            Issue.record("4 MiB payload refused")
            return
        }
        #expect(Int(header.length) == 4 << 20)
    }

    @Test func errorResponseGoldenBytes() throws {
        let bytes = Ttrpc_Response.encoded(.failure(TTRPCError(.notFound, "no")))
        // Response{status: Status{code: 5, message: "no"}}
        #expect(bytes == golden(#"0a06 0805 1202"no""#))
        let back = try Ttrpc_Response(serializedBytes: bytes)
        #expect(back.outcome == .failure(TTRPCError(.notFound, "no")))
    }

    @Test func successResponseGoldenBytes() throws {
        #expect(Ttrpc_Response.encoded(.success([])) == [])
        #expect(Ttrpc_Response.encoded(.success([7])) == golden("1201 07"))
        #expect(try Ttrpc_Response(serializedBytes: golden("1201 07")).outcome == .success([7]))
        // A status with code 0 is success too.
        #expect(try Ttrpc_Response(serializedBytes: golden("0a00 1201 07")).outcome == .success([7]))
    }

    @Test func tooLargeResponseBecomesResourceExhausted() throws {
        let bytes = Ttrpc_Response.encoded(.success([UInt8](repeating: 0, count: FrameHeader.maxPayload)))
        let response = try Ttrpc_Response(serializedBytes: bytes)
        guard case .failure(let error) = response.outcome else {
            Issue.record("oversized response sent as success")
            return
        }
        #expect(error.code == .resourceExhausted)
    }

    @Test func timeoutIsSentInNanoseconds() {
        let request = Ttrpc_Request(
            service: "s", method: "m", payload: [], options: TTRPCCallOptions(timeout: .milliseconds(1500)))
        #expect(request.timeoutNano == 1_500_000_000)
        let expired = Ttrpc_Request(service: "s", method: "m", payload: [], options: TTRPCCallOptions(timeout: .zero))
        #expect(expired.timeoutNano == 1)
    }

    @Test func metadataKeysAreLowercasedAndRepeatable() {
        var metadata = TTRPCMetadata()
        metadata.add("X-Trace", "a")
        metadata.add("x-trace", "b")
        metadata.add("other", "c")
        #expect(metadata["X-TRACE"] == ["a", "b"])
        #expect(metadata.first("Other") == "c")
        metadata.set("x-trace", "z")
        #expect(metadata["x-trace"] == ["z"])
        #expect(TTRPCMetadata(wire: metadata.wire) == metadata)
    }

    @Test func statusCodesUseGRPCNumbering() {
        #expect(TTRPCStatusCode.allKnown.count == 17)
        #expect(TTRPCStatusCode.notFound.rawValue == 5)
        #expect(TTRPCStatusCode.unimplemented.rawValue == 12)
        #expect(TTRPCStatusCode.unavailable.rawValue == 14)
        #expect(TTRPCStatusCode.deadlineExceeded.description == "DeadlineExceeded")
        #expect(TTRPCStatusCode(rawValue: 99).description == "Code(99)")
    }
}
