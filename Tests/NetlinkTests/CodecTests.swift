// The netlink codec without a kernel: golden request bytes, decoding of kernel-shaped replies,
// and hostile input (every truncation, random bytes, lying lengths) that must fail cleanly.
import Testing
@testable import Netlink

@Suite struct CodecTests {
    @Test func ingressQdiscRequestMatchesGoldenBytes() {
        // nlmsghdr{len 48, RTM_NEWQDISC, REQUEST|ACK|EXCL|CREATE, seq 7} tcmsg{ifindex 5,
        // handle ffff:0, parent ffff:fff1} TCA_KIND "ingress".
        let bytes = NetlinkRequest.addIngressQdisc(index: 5).encoded(sequence: 7)
        #expect(
            bytes.hex == "300000002400050607000000" + "00000000" + "00000000" + "05000000" + "0000ffff" + "f1ffffff"
                + "00000000" + "0c000100696e677265737300")
    }

    @Test func setLinkRequestMatchesGoldenBytes() throws {
        // RTM_SETLINK, ifinfomsg{index 3, flags IFF_UP, change IFF_UP}, IFLA_MTU 1400.
        let bytes = try NetlinkRequest.setLink(index: 3, LinkChange(up: true, mtu: 1400)).encoded(sequence: 1)
        #expect(
            bytes.hex == "280000001300050001000000" + "00000000" + "00000000" + "03000000" + "01000000" + "01000000"
                + "08000400" + "78050000")
    }

    @Test func routeRequestCarriesEveryField() throws {
        let route = Route(
            family: .ipv4, destination: IPPrefix("198.51.100.77/24"), gateway: IPAddress("192.0.2.1"), outputIndex: 4,
            preferredSource: IPAddress("192.0.2.5"))
        let bytes = try NetlinkRequest.route(route, replace: true).encoded(sequence: 9)
        let message = try NetlinkMessage.parse(bytes)[0]
        #expect(message.type == MessageType.newRoute)
        #expect(message.flags == [.request, .ack, .create, .replace])
        let decoded = try Route.decode(message.payload)
        // The destination goes out as its network address.
        #expect(decoded.destination == IPPrefix("198.51.100.0/24"))
        #expect(decoded.gateway == IPAddress("192.0.2.1"))
        #expect(decoded.outputIndex == 4)
        #expect(decoded.preferredSource == IPAddress("192.0.2.5"))
        #expect(decoded.table == RouteTable.main)
        #expect(decoded.proto == RouteProtocol.boot)
        // A gateway of the other family is refused before anything is sent.
        #expect(throws: NetlinkError.self) {
            _ = try NetlinkRequest.route(Route(family: .ipv4, gateway: IPAddress("2001:db8::1")))
        }
    }

    @Test func redirectFilterEncodesU32MatchAllAndMirred() throws {
        for classifier in [RedirectClassifier.u32, .matchall] {
            let bytes = NetlinkRequest.addRedirectFilter(index: 2, target: 9, classifier: classifier, priority: 1).encoded(sequence: 3)
            let message = try NetlinkMessage.parse(bytes)[0]
            #expect(message.type == MessageType.newFilter)
            // Our decoder reads requests and dumps alike: kind, priority, protocol, the action.
            let filter = try Filter.decode(message.payload)
            #expect(filter.kind == classifier.rawValue)
            #expect(filter.index == 2)
            #expect(filter.parent == TrafficControl.ingressHandle)
            #expect(filter.priority == 1)
            #expect(filter.protocolNumber == TrafficControl.protocolAll)
            #expect(filter.mirred == [MirredAction(direction: 1, targetIndex: 9)])
        }
        let u32 = NetlinkRequest.addRedirectFilter(index: 2, target: 9, classifier: .u32, priority: 1).encoded(sequence: 3)
        #expect(u32.count == 140)
        // tc_u32_sel: flags TC_U32_TERMINAL, nkeys 1, then a zero key (mask 0: matches all).
        let options = try NetlinkAttribute.parse(try NetlinkMessage.parse(u32)[0].payload.dropFirstArray(20), "filter")
            .first(TCAttribute.options)!.nested()
        let selector = try #require(options.first(TCAttribute.u32Selector))
        #expect(selector.value == [1, 0, 1] + [UInt8](repeating: 0, count: 29))
    }

    @Test func vethPairRequestNestsThePeer() throws {
        let bytes = try NetlinkRequest.addLink(name: "ks0", kind: .veth(peerName: "ks1")).encoded(sequence: 1)
        let payload = try NetlinkMessage.parse(bytes)[0].payload
        let attributes = try NetlinkAttribute.parse(payload.dropFirstArray(16), "link")
        #expect(attributes.first(3)?.string() == "ks0")
        let info = try #require(try attributes.first(18)?.nested())
        #expect(info.first(1)?.string() == "veth")
        let peer = try #require(try info.first(2)?.nested().first(1))
        #expect(try NetlinkAttribute.parse(peer.value.dropFirstArray(16), "peer").first(3)?.string() == "ks1")
        #expect(throws: NetlinkError.self) { _ = try NetlinkRequest.addLink(name: "sixteen-chars-xx", kind: .dummy) }
        #expect(throws: NetlinkError.self) { _ = try NetlinkRequest.addLink(name: "a/b", kind: .dummy) }
    }

    @Test func linkDecodes() throws {
        let payload = Frames.linkPayload(index: 7, name: "eth0", mac: [0x02, 0, 0, 0, 0, 7], mtu: 1450, up: true)
        let link = try Link.decode(payload)
        #expect(link.index == 7)
        #expect(link.name == "eth0")
        #expect(link.address == MACAddress("02:00:00:00:00:07"))
        #expect(link.mtu == 1450)
        #expect(link.isUp)
        #expect(link.kind == "veth")
        #expect(link.hardwareType == Link.arphrdEther)
    }

    @Test func addressesNeighboursQdiscsDecode() throws {
        // ifaddrmsg{inet, /24, flags 0x80, scope 0, index 7} IFA_ADDRESS, IFA_LOCAL 192.0.2.5.
        let address = try InterfaceAddress.decode(
            Frames.payload(header: [2, 24, 0x80, 0, 7, 0, 0, 0], attributes: [(1, [192, 0, 2, 5]), (2, [192, 0, 2, 5]), (3, Frames.cString("eth0"))]))
        #expect(address.prefix == IPPrefix("192.0.2.5/24"))
        #expect(address.index == 7)
        #expect(address.peer == nil)
        #expect(address.label == "eth0")
        // IPv6: IFA_ADDRESS only, IFA_FLAGS wider than the header's byte.
        let v6 = try InterfaceAddress.decode(
            Frames.payload(
                header: [10, 64, 0, 0, 7, 0, 0, 0],
                attributes: [(1, IPAddress("2001:db8::5")!.bytes), (8, Frames.le(UInt32(0x280)))]))
        #expect(v6.prefix == IPPrefix("2001:db8::5/64"))
        #expect(v6.flags == 0x280)
        // ndmsg{inet, index 7, NUD_PERMANENT} NDA_DST, NDA_LLADDR.
        let neighbor = try Neighbor.decode(
            Frames.payload(
                header: [2, 0, 0, 0, 7, 0, 0, 0, 0x80, 0, 0, 0],
                attributes: [(1, [192, 0, 2, 1]), (2, [0xee, 0xee, 0xee, 0xee, 0xee, 0xee])]))
        #expect(neighbor.address == IPAddress("192.0.2.1"))
        #expect(neighbor.state == .permanent)
        #expect(neighbor.linkAddress == MACAddress("ee:ee:ee:ee:ee:ee"))
        let qdisc = try Qdisc.decode(
            Frames.payload(
                header: [0, 0, 0, 0, 7, 0, 0, 0] + Frames.le(UInt32(0xffff_0000)) + Frames.le(UInt32(0xffff_fff1)) + [0, 0, 0, 0],
                attributes: [(1, Frames.cString("ingress"))]))
        #expect(qdisc.isIngress)
        #expect(qdisc.index == 7)
    }

    @Test func addressTextForms() {
        #expect(IPAddress("192.0.2.1")?.description == "192.0.2.1")
        #expect(IPAddress("2001:DB8::1")?.description == "2001:db8::1")
        #expect(IPAddress("192.0.2.256") == nil)
        #expect(IPAddress("") == nil)
        #expect(IPPrefix("192.0.2.9/24")?.network == IPPrefix("192.0.2.0/24"))
        #expect(IPPrefix("2001:db8::ff/121")?.network.description == "2001:db8::80/121")
        #expect(IPPrefix("192.0.2.1/33") == nil)
        #expect(IPPrefix("192.0.2.1/x") == nil)
        #expect(IPPrefix("10.1.2.3")?.length == 32)
        #expect(IPAddress("fe80::1")?.isIPv6LinkLocal == true)
        #expect(MACAddress("02:AB:cd:0:1:ff")?.description == "02:ab:cd:00:01:ff")
        #expect(MACAddress("02:ab:cd:00:01") == nil)
        #expect(MACAddress("02:ab:cd:00:01:fff") == nil)
        #expect(MACAddress("02:ab:cd:00:01:gg") == nil)
    }

    @Test func errorPayloadCarriesErrnoAndExtendedAck() throws {
        let message = try NetlinkMessage.parse(Frames.ack(sequence: 3, errno: 17, extendedMessage: "Exclusivity flag on"))[0]
        let (code, text) = try message.errorPayload()
        #expect(code == -17)
        #expect(text == "Exclusivity flag on")
        let plain = try NetlinkMessage.parse(Frames.ack(sequence: 3))[0]
        #expect(try plain.errorPayload().errno == 0)
    }

    // MARK: hostile input

    @Test func lyingLengthsAreMalformed() {
        // Message length below a header, past the datagram, trailing bytes.
        var short = Frames.done(sequence: 1)
        short[0] = 8
        #expect(throws: NetlinkError.self) { _ = try NetlinkMessage.parse(short) }
        var long = Frames.done(sequence: 1)
        long[0] = 200
        #expect(throws: NetlinkError.self) { _ = try NetlinkMessage.parse(long) }
        #expect(throws: NetlinkError.self) { _ = try NetlinkMessage.parse(Frames.done(sequence: 1) + [1, 2, 3]) }
        #expect(throws: NetlinkError.self) { _ = try NetlinkMessage.parse(Array(Frames.done(sequence: 1).prefix(15))) }
        // Attribute length below its header, past the end, odd trailing bytes.
        #expect(throws: NetlinkError.self) { _ = try NetlinkAttribute.parse([2, 0, 1, 0], "t") }
        #expect(throws: NetlinkError.self) { _ = try NetlinkAttribute.parse([9, 0, 1, 0, 1, 2, 3, 4], "t") }
        #expect(throws: NetlinkError.self) { _ = try NetlinkAttribute.parse([8, 0, 1, 0, 1, 2, 3, 4, 0, 0], "t") }
        // An attribute too short for its integer, an address of the wrong size.
        #expect(throws: NetlinkError.self) {
            _ = try Link.decode(Frames.payload(header: [UInt8](repeating: 0, count: 16), attributes: [(3, Frames.cString("x")), (4, [1, 2])]))
        }
        #expect(throws: NetlinkError.self) {
            _ = try Route.decode(Frames.payload(header: [2, 24, 0, 0, 254, 2, 253, 1, 0, 0, 0, 0], attributes: [(1, [10, 0, 0])]))
        }
        // A prefix length the address cannot have; a destination length without a destination.
        #expect(throws: NetlinkError.self) {
            _ = try Route.decode(Frames.payload(header: [2, 40, 0, 0, 254, 2, 253, 1, 0, 0, 0, 0], attributes: [(1, [10, 0, 0, 0])]))
        }
        #expect(throws: NetlinkError.self) {
            _ = try Route.decode(Frames.payload(header: [2, 24, 0, 0, 254, 2, 253, 1, 0, 0, 0, 0], attributes: []))
        }
        // A mirred action whose parameters are cut short.
        let filter = NetlinkRequest.addRedirectFilter(index: 2, target: 9, classifier: .matchall, priority: 1).encoded(sequence: 1)
        var cut = try! NetlinkMessage.parse(filter)[0].payload
        // The last attribute is tc_mirred (28 bytes); shrink every enclosing length by 8.
        cut.removeLast(8)
        #expect(throws: NetlinkError.self) { _ = try Filter.decode(cut) }
    }

    @Test func everyTruncationOfRealMessagesFailsCleanly() throws {
        let samples: [(String, ([UInt8]) throws -> Void)] = [
            ("link", { _ = try Link.decode($0) }),
            ("filter", { _ = try Filter.decode($0) }),
            ("route", { _ = try Route.decode($0) }),
        ]
        let payloads = [
            Frames.linkPayload(index: 7, name: "eth0", mac: [2, 0, 0, 0, 0, 7], mtu: 1500, up: true),
            try NetlinkMessage.parse(NetlinkRequest.addRedirectFilter(index: 2, target: 9, classifier: .u32, priority: 1).encoded(sequence: 1))[0].payload,
            try NetlinkMessage.parse(
                try NetlinkRequest.route(Route(family: .ipv6, destination: IPPrefix("2001:db8::/64"), outputIndex: 3)).encoded(sequence: 1))[0].payload,
        ]
        for ((name, decode), payload) in zip(samples, payloads) {
            try decode(payload)  // whole: decodes
            for cut in 0..<payload.count {
                do {
                    try decode(Array(payload.prefix(cut)))
                } catch is NetlinkError {
                    continue
                }
                // A cut on an attribute boundary may still decode; it must not crash.
                _ = name
            }
        }
    }

    @Test func randomBytesNeverCrashTheDecoders() {
        var rng = SplitMix64(seed: 0x6b73_6e6c)
        var decoded = 0
        for round in 0..<20_000 {
            let count = Int(rng.next() % 96)
            var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            // Half the time, plausible lengths so the parsers get past the first check.
            if round % 2 == 0, bytes.count >= 4 {
                bytes[0] = UInt8(truncatingIfNeeded: bytes.count - Int(rng.next() % 8))
                bytes[1] = 0
            }
            for decode in [
                { (b: [UInt8]) throws in _ = try NetlinkMessage.parse(b) },
                { _ = try NetlinkAttribute.parse($0, "random") },
                { _ = try Link.decode($0) }, { _ = try InterfaceAddress.decode($0) }, { _ = try Route.decode($0) },
                { _ = try Neighbor.decode($0) }, { _ = try Qdisc.decode($0) }, { _ = try Filter.decode($0) },
                { _ = try NetlinkMessage(type: 2, flags: [.ackTLVs], sequence: 0, portID: 0, payload: $0).errorPayload() },
            ] as [([UInt8]) throws -> Void] {
                do {
                    try decode(bytes)
                    decoded += 1
                } catch {
                    #expect(error is NetlinkError)
                }
            }
        }
        #expect(decoded > 0)
    }
}

/// A small deterministic generator (no Foundation).
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    func dropFirstArray(_ n: Int) -> [UInt8] { Array(dropFirst(n)) }
}
