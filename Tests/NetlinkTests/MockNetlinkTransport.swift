// A NetlinkTransport that records requests and answers from a script: a test double for the
// client's sequence, ack and dump handling, without a kernel.
import Synchronization
@testable import Netlink

final class MockNetlinkTransport: NetlinkTransport {
    let portID: UInt32 = 4242
    /// Given a request, the datagrams to answer it with.
    private let respond: @Sendable (NetlinkMessage) -> [[UInt8]]
    private let state = Mutex<(sent: [[UInt8]], pending: [[UInt8]])>(([], []))

    init(respond: @escaping @Sendable (NetlinkMessage) -> [[UInt8]]) {
        self.respond = respond
    }

    var sent: [[UInt8]] { state.withLock { $0.sent } }

    func send(_ bytes: [UInt8]) throws(NetlinkError) {
        let message = try NetlinkMessage.parse(bytes)[0]
        let replies = respond(message)
        state.withLock {
            $0.sent.append(bytes)
            $0.pending += replies
        }
    }

    func receive() throws(NetlinkError) -> [UInt8] {
        let next = state.withLock { s -> [UInt8]? in s.pending.isEmpty ? nil : s.pending.removeFirst() }
        guard let next else { throw .system(operation: "recv(mock): nothing queued", errno: .wouldBlock) }
        return next
    }
}

/// Builds kernel-style messages for tests.
enum Frames {
    static func message(type: UInt16, flags: MessageFlags = [], sequence: UInt32, payload: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.append(UInt32(16 + payload.count))
        w.append(type)
        w.append(flags.rawValue)
        w.append(sequence)
        w.append(UInt32(4242))
        w.append(payload)
        w.pad()
        return w.bytes
    }

    static func ack(sequence: UInt32, errno: Int32 = 0, extendedMessage: String? = nil) -> [UInt8] {
        var w = ByteWriter()
        w.append(-errno)
        // The request's header (capped ack).
        w.append(UInt32(16))
        w.append(UInt16(0))
        w.append(UInt16(0))
        w.append(sequence)
        w.append(UInt32(0))
        var flags: MessageFlags = [.capped]
        if let extendedMessage {
            flags.insert(.ackTLVs)
            let text = Array(extendedMessage.utf8) + [0]
            w.append(UInt16(4 + text.count))
            w.append(UInt16(1))
            w.append(text)
            w.pad()
        }
        return message(type: MessageType.error, flags: flags, sequence: sequence, payload: w.bytes)
    }

    static func done(sequence: UInt32) -> [UInt8] {
        message(type: MessageType.done, flags: [.multi], sequence: sequence, payload: [0, 0, 0, 0])
    }

    /// A payload: a fixed header, then attributes.
    static func payload(header: [UInt8], attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var w = ByteWriter()
        w.append(header)
        for (type, value) in attributes {
            w.append(UInt16(4 + value.count))
            w.append(type)
            w.append(value)
            w.pad()
        }
        return w.bytes
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        var w = ByteWriter()
        w.append(value)
        return w.bytes
    }

    static func cString(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }

    /// RTM_NEWLINK payload of an Ethernet veth.
    static func linkPayload(index: Int32, name: String, mac: [UInt8], mtu: UInt32, up: Bool, kind: String? = "veth") -> [UInt8] {
        var header = ByteWriter()
        header.append(UInt8(0))
        header.append(UInt8(0))
        header.append(UInt16(1))  // ARPHRD_ETHER
        header.append(index)
        header.append(UInt32(up ? 0x1_0043 : 0x1002))
        header.append(UInt32(0))
        var attributes: [(UInt16, [UInt8])] = [(3, cString(name)), (1, mac), (4, le(mtu))]
        if let kind { attributes.append((18, payload(header: [], attributes: [(1, cString(kind))]))) }
        return payload(header: header.bytes, attributes: attributes)
    }
}

extension Array where Element == UInt8 {
    var hex: String { map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}
