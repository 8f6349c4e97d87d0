// An rtnetlink client: one request at a time, each with its own sequence number; requests that
// change something wait for the kernel's ack (NLMSG_ERROR with error 0) and turn a refusal into
// its errno; dumps collect every multipart reply up to NLMSG_DONE.
import Synchronization
import SystemSupport

public final class RouteNetlink: Sendable {
    public let transport: any NetlinkTransport
    /// The last sequence number used; the lock also keeps one exchange on the socket at a time.
    private let sequence: Mutex<UInt32>

    /// A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried this often.
    static let dumpAttempts = 4

    /// A NETLINK_ROUTE socket in the calling thread's network namespace.
    public convenience init() throws(NetlinkError) {
        self.init(transport: try NetlinkSocket())
    }

    public init(transport: any NetlinkTransport, firstSequence: UInt32 = 1) {
        self.transport = transport
        sequence = Mutex(firstSequence &- 1)
    }

    /// Sends `request` with NLM_F_ACK and waits for its ack. `operation` names it in errors.
    public func execute(_ request: NetlinkRequest, operation: String) throws(NetlinkError) {
        try sequence.withLock { (last: inout UInt32) throws(NetlinkError) in
            last &+= 1
            let seq = last
            try transport.send(request.encoded(sequence: seq))
            while true {
                for message in try NetlinkMessage.parse(transport.receive()) where message.sequence == seq {
                    if message.type == MessageType.error {
                        let (code, text) = try message.errorPayload()
                        if code == 0 { return }
                        throw .kernel(operation: operation, errno: Errno(rawValue: -code), message: text)
                    }
                    // Anything else with our number (an echo) is not the ack: keep reading.
                }
            }
        }
    }

    /// Sends a dump request and returns the payloads of the replies of `replyType`.
    public func dump(_ request: NetlinkRequest, replyType: UInt16, operation: String) throws(NetlinkError) -> [[UInt8]] {
        var attempt = 1
        while true {
            let (payloads, interrupted) = try dumpOnce(request, replyType: replyType, operation: operation)
            if !interrupted { return payloads }
            guard attempt < Self.dumpAttempts else {
                throw .kernel(operation: operation, errno: Errno(rawValue: 4 /* EINTR */), message: "dump interrupted \(attempt) times")
            }
            attempt += 1
        }
    }

    private func dumpOnce(_ request: NetlinkRequest, replyType: UInt16, operation: String) throws(NetlinkError)
        -> (payloads: [[UInt8]], interrupted: Bool)
    {
        try sequence.withLock { (last: inout UInt32) throws(NetlinkError) in
            last &+= 1
            let seq = last
            try transport.send(request.encoded(sequence: seq))
            var payloads: [[UInt8]] = []
            var interrupted = false
            while true {
                for message in try NetlinkMessage.parse(transport.receive()) where message.sequence == seq {
                    if message.flags.contains(.dumpInterrupted) { interrupted = true }
                    switch message.type {
                    case MessageType.done:
                        // A dump that failed part-way puts a negative errno here.
                        if message.payload.count >= 4 {
                            let code = try ByteReader(message.payload, "NLMSG_DONE").i32(at: 0)
                            if code < 0 { throw .kernel(operation: operation, errno: Errno(rawValue: -code), message: nil) }
                        }
                        return (payloads, interrupted)
                    case MessageType.error:
                        let (code, text) = try message.errorPayload()
                        if code == 0 { return (payloads, interrupted) }
                        throw .kernel(operation: operation, errno: Errno(rawValue: -code), message: text)
                    case MessageType.overrun:
                        throw .kernel(operation: operation, errno: Errno(rawValue: 105 /* ENOBUFS */), message: "overrun")
                    case replyType:
                        payloads.append(message.payload)
                    default:
                        break
                    }
                }
            }
        }
    }
}
