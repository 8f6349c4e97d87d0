// RouteNetlink's exchanges against a scripted transport: sequence numbers, acks, kernel errors
// with their extended-ack text, multipart dumps, interrupted dumps, stale replies.
import Synchronization
import SystemSupport
import Testing
@testable import Netlink

@Suite struct ClientTests {
    @Test func ackAndKernelErrors() throws {
        let transport = MockNetlinkTransport { request in
            // A stale reply of an earlier exchange comes first and must be skipped.
            let stale = Frames.ack(sequence: request.sequence &- 1, errno: 1)
            if request.type == MessageType.newQdisc {
                return [stale + Frames.ack(sequence: request.sequence, errno: 17, extendedMessage: "Exclusivity flag on, cannot modify")]
            }
            return [stale, Frames.ack(sequence: request.sequence)]
        }
        let netlink = RouteNetlink(transport: transport, firstSequence: 100)
        try netlink.setLink(index: 3, LinkChange(up: true))
        do {
            try netlink.addIngressQdisc(index: 3)
            Issue.record("EEXIST expected")
        } catch {
            #expect(error == .kernel(operation: "RTM_NEWQDISC ingress on 3", errno: Errno(rawValue: 17), message: "Exclusivity flag on, cannot modify"))
            #expect(error.errno?.rawValue == 17)
            #expect("\(error)".contains("Exclusivity flag on"))
        }
        let sequences = try transport.sent.map { try NetlinkMessage.parse($0)[0].sequence }
        #expect(sequences == [100, 101])
    }

    @Test func multipartDumpUntilDone() throws {
        let transport = MockNetlinkTransport { request in
            let a = Frames.message(
                type: MessageType.newLink, flags: [.multi], sequence: request.sequence,
                payload: Frames.linkPayload(index: 1, name: "lo", mac: [0, 0, 0, 0, 0, 0], mtu: 65536, up: true, kind: nil))
            let b = Frames.message(
                type: MessageType.newLink, flags: [.multi], sequence: request.sequence,
                payload: Frames.linkPayload(index: 2, name: "eth0", mac: [2, 0, 0, 0, 0, 2], mtu: 1500, up: false))
            // Two datagrams; the second carries a message and NLMSG_DONE.
            return [a, b + Frames.done(sequence: request.sequence)]
        }
        let links = try RouteNetlink(transport: transport).links()
        #expect(links.map(\.name) == ["lo", "eth0"])
        let request = try NetlinkMessage.parse(transport.sent[0])[0]
        #expect(request.type == MessageType.getLink)
        #expect(request.flags == [.request, .dump])
    }

    @Test func interruptedDumpIsRetried() throws {
        let attempts = Mutex(0)
        let transport = MockNetlinkTransport { request in
            let attempt = attempts.withLock { n -> Int in
                n += 1
                return n
            }
            let flags: MessageFlags = attempt == 1 ? [.multi, .dumpInterrupted] : [.multi]
            let link = Frames.message(
                type: MessageType.newLink, flags: flags, sequence: request.sequence,
                payload: Frames.linkPayload(index: 2, name: "eth0", mac: [2, 0, 0, 0, 0, 2], mtu: 1500, up: true))
            return [link + Frames.done(sequence: request.sequence)]
        }
        #expect(try RouteNetlink(transport: transport).links().count == 1)
        #expect(attempts.withLock { $0 } == 2)
    }

    @Test func dumpErrorAndGarbageReplies() {
        let failing = MockNetlinkTransport { [Frames.ack(sequence: $0.sequence, errno: 95)] }
        #expect(throws: NetlinkError.kernel(operation: "RTM_GETROUTE", errno: Errno(rawValue: 95), message: nil)) {
            _ = try RouteNetlink(transport: failing).routes()
        }
        let garbage = MockNetlinkTransport { _ in [[0xff, 0xff, 0xff, 0xff, 1, 2, 3]] }
        #expect(throws: NetlinkError.self) { _ = try RouteNetlink(transport: garbage).links() }
        // A reply whose link payload is cut: malformed, not a crash.
        let cut = MockNetlinkTransport { request in
            [Frames.message(type: MessageType.newLink, flags: [.multi], sequence: request.sequence, payload: [1, 2, 3]) + Frames.done(sequence: request.sequence)]
        }
        #expect(throws: NetlinkError.self) { _ = try RouteNetlink(transport: cut).links() }
    }
}
