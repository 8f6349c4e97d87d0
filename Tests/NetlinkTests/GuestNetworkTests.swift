// The agent's network configuration applied inside a scratch namespace (root): a veth (this
// host has no dummy driver) stands in for the guest NIC, found by MAC, renamed, given an MTU
// and addresses; routes and neighbours as the runtime sends them; read back with
// ListInterfaces/ListRoutes and iproute2.
import AgentAPI
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import Agent
@testable import Netlink

@Suite(.serialized, .enabled(if: ScratchNamespace.available, "needs root and iproute2"))
struct GuestNetworkTests {
    static func address(_ text: String, _ length: UInt32) -> Kata_Agent_V1_IPAddress {
        var ip = Kata_Agent_V1_IPAddress()
        ip.address = text
        ip.prefixLength = length
        ip.ipv6 = text.contains(":")
        return ip
    }

    static func route(_ destination: String, gateway: String = "", device: String = "eth0", source: String = "", scope: UInt32 = 0) -> Kata_Agent_V1_Route {
        var route = Kata_Agent_V1_Route()
        route.destination = destination
        route.gateway = gateway
        route.device = device
        route.source = source
        route.scope = scope
        return route
    }

    @Test func configuresTheNICAsTheRuntimeAsks() throws {
        let guest = try ScratchNamespace()
        // The guest NIC: any name, the veth's MAC, an address left from before.
        try guest.ip("link", "add", "ens3", "address", "02:6b:73:00:00:05", "type", "veth", "peer", "name", "ens3p")
        try guest.ip("addr", "add", "203.0.113.9/24", "dev", "ens3")
        let net = GuestNetwork(netlink: try NetworkNamespace.routeNetlink(path: guest.path))

        #expect(try net.bringLoopbackUp(), "a new namespace's lo is down")
        #expect(try !net.bringLoopbackUp(), "the second time there is nothing to do")

        var request = Kata_Agent_V1_Interface()
        request.name = "eth0"
        request.hwAddr = "02:6B:73:00:00:05"
        request.mtu = 1450
        request.addresses = [Self.address("192.0.2.5", 24), Self.address("2001:db8::5", 64)]
        let answer = try net.updateInterface(request)
        #expect(answer.name == "eth0" && answer.hwAddr == "02:6b:73:00:00:05" && answer.mtu == 1450 && answer.up)
        let shown = try guest.ip("addr", "show", "dev", "eth0")
        #expect(shown.contains("inet 192.0.2.5/24") && shown.contains("inet6 2001:db8::5/64") && shown.contains("mtu 1450"))
        #expect(!shown.contains("203.0.113.9"), "old addresses are flushed")
        #expect(!shown.contains("tentative"), "no duplicate address detection")

        let routes = try net.updateRoutes([
            Self.route("", gateway: "192.0.2.1"),  // listed first, added after the link route
            Self.route("192.0.2.0/24", source: "192.0.2.5", scope: 253),
            Self.route("198.51.100.0/24", gateway: "192.0.2.254"),
            Self.route("2001:db8::/64"),
            Self.route("::/0", gateway: "2001:db8::1"),
        ])
        let table = try guest.ip("route", "show")
        #expect(table.contains("default via 192.0.2.1 dev eth0"), "\(table)")
        #expect(table.contains("192.0.2.0/24 dev eth0 scope link src 192.0.2.5"), "\(table)")
        #expect(table.contains("198.51.100.0/24 via 192.0.2.254 dev eth0"), "\(table)")
        #expect(try guest.ip("-6", "route", "show").contains("default via 2001:db8::1 dev eth0"))
        // ListRoutes reads the same table.
        let listed = try net.listRoutes()
        #expect(listed == routes)
        #expect(listed.contains { $0.destination == "" && $0.gateway == "192.0.2.1" && $0.device == "eth0" })
        #expect(listed.contains { $0.destination == "192.0.2.0/24" && $0.source == "192.0.2.5" && $0.scope == 253 })
        // A second update replaces the device's routes: only what is listed remains (plus the
        // kernel's IPv6 link-local ones).
        _ = try net.updateRoutes([Self.route("192.0.2.0/24", scope: 253), Self.route("", gateway: "192.0.2.2")])
        let replaced = try guest.ip("route", "show")
        #expect(!replaced.contains("198.51.100.0") && replaced.contains("default via 192.0.2.2"), "\(replaced)")

        var neighbor = Kata_Agent_V1_ARPNeighbor()
        neighbor.toIpAddress = Self.address("192.0.2.1", 0)
        neighbor.device = "eth0"
        neighbor.lladdr = "02:6b:73:00:00:01"
        try net.addNeighbors([neighbor])
        #expect(try guest.ip("neigh", "show", "dev", "eth0").contains("192.0.2.1 lladdr 02:6b:73:00:00:01 PERMANENT"))

        let interfaces = try net.listInterfaces()
        let eth0 = try #require(interfaces.first { $0.name == "eth0" })
        #expect(eth0.mtu == 1450 && eth0.up)
        #expect(Set(eth0.addresses.map(\.address)).isSuperset(of: ["192.0.2.5", "2001:db8::5"]))
        #expect(interfaces.contains { $0.name == "lo" && $0.up })
    }

    /// A warm sandbox's NIC was booted with a MAC of its own: found by name, it takes the veth's.
    @Test func aNICFoundByNameTakesTheVethsMAC() throws {
        let guest = try ScratchNamespace()
        try guest.ip("link", "add", "eth0", "address", "02:00:00:aa:bb:cc", "type", "veth", "peer", "name", "eth0p")
        let net = GuestNetwork(netlink: try NetworkNamespace.routeNetlink(path: guest.path))
        var request = Kata_Agent_V1_Interface()
        request.name = "eth0"
        request.hwAddr = "02:6b:73:00:00:07"
        request.addresses = [Self.address("192.0.2.7", 24)]
        let answer = try net.updateInterface(request)
        #expect(answer.hwAddr == "02:6b:73:00:00:07" && answer.up)
        #expect(try guest.ip("link", "show", "dev", "eth0").contains("link/ether 02:6b:73:00:00:07"))
    }

    /// A VM restored from a template has one NIC with the template's MAC, under the name its
    /// kernel gave it: the only NIC is the one to configure, renamed to the pod's interface.
    @Test func aGuestsOnlyNICIsConfiguredWhateverItsNameAndMAC() throws {
        let guest = try ScratchNamespace()
        let wire = try ScratchNamespace()  // the veth's peer lives elsewhere: one NIC in the guest
        try guest.ip("link", "add", "ens5", "address", "02:00:00:aa:bb:01", "type", "veth", "peer", "name", "peer0", "netns", wire.name)
        let net = GuestNetwork(netlink: try NetworkNamespace.routeNetlink(path: guest.path))
        var request = Kata_Agent_V1_Interface()
        request.name = "net1"
        request.hwAddr = "02:6b:73:00:00:08"
        request.addresses = [Self.address("192.0.2.8", 24)]
        let answer = try net.updateInterface(request)
        #expect(answer.name == "net1" && answer.hwAddr == "02:6b:73:00:00:08" && answer.up)

        // With two NICs neither is a guess: an unknown MAC and name are refused.
        try guest.ip("link", "add", "ens6", "type", "veth", "peer", "name", "peer1", "netns", wire.name)
        request.name = "net2"
        request.hwAddr = "02:6b:73:00:00:09"
        #expect(throws: NetlinkError.notFound("link with MAC 02:6b:73:00:00:09 or name \"net2\"")) { _ = try net.updateInterface(request) }
    }

    /// The warm NIC's tap moves from its holding namespace into the pod's (IFLA_NET_NS_FD).
    @Test func aLinkMovesIntoAnotherNamespace() throws {
        let holdingPath = "/tmp/ks-holding-\(getpid())"
        try NetworkNamespace.create(at: holdingPath)
        defer { NetworkNamespace.remove(at: holdingPath) }
        #expect(throws: (any Error).self) { try NetworkNamespace.create(at: holdingPath) }  // never over an existing file
        let pod = try ScratchNamespace()
        let holding = try NetworkNamespace.routeNetlink(path: holdingPath)
        try holding.addLink(name: "tap0_kata", kind: .veth(peerName: "tap0p"))
        let podFD = open(pod.path, O_RDONLY | O_CLOEXEC)
        defer { close(podFD) }
        try holding.setLink(index: try holding.link(named: "tap0_kata").index, LinkChange(namespaceFD: podFD))
        #expect(throws: NetlinkError.self) { try holding.link(named: "tap0_kata") }
        #expect(try pod.ip("link", "show", "dev", "tap0_kata").contains("tap0_kata"))
    }

    @Test func refusesBadRequestsBeforeChangingAnything() throws {
        let guest = try ScratchNamespace()
        try guest.ip("link", "add", "ens3", "address", "02:6b:73:00:00:06", "type", "veth", "peer", "name", "ens3p")
        let net = GuestNetwork(netlink: try NetworkNamespace.routeNetlink(path: guest.path))
        var request = Kata_Agent_V1_Interface()
        request.hwAddr = "02:6b:73:00:00:06"
        request.addresses = [Self.address("192.0.2.300", 24)]
        #expect(throws: AgentError.self) { _ = try net.updateInterface(request) }
        request.addresses = [Self.address("192.0.2.5", 33)]
        #expect(throws: AgentError.self) { _ = try net.updateInterface(request) }
        request.addresses = []
        request.hwAddr = "02:6b:73:00:00:99"
        #expect(throws: NetlinkError.notFound("link with MAC 02:6b:73:00:00:99 or name \"\"")) { _ = try net.updateInterface(request) }
        // Mixed families, unknown device: nothing is deleted first.
        #expect(throws: AgentError.self) { _ = try net.updateRoutes([Self.route("192.0.2.0/24", gateway: "2001:db8::1", device: "ens3")]) }
        #expect(throws: NetlinkError.self) { _ = try net.updateRoutes([Self.route("192.0.2.0/24", device: "nope0")]) }
        // A gateway on no subnet of the link: the kernel's ENETUNREACH, mapped for the wire.
        try guest.ip("link", "set", "ens3", "up")
        do {
            _ = try net.updateRoutes([Self.route("", gateway: "198.51.100.1", device: "ens3")])
            Issue.record("unreachable gateway accepted")
        } catch let error as NetlinkError {
            #expect(NetworkErrorCode.code(for: error) == .failedPrecondition, "\(error)")
        }
        #expect(NetworkErrorCode.code(for: .kernel(operation: "x", errno: .init(rawValue: 17), message: nil)) == .alreadyExists)
        #expect(NetworkErrorCode.code(for: .notFound("x")) == .notFound)
    }
}
