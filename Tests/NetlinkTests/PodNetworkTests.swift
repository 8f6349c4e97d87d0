// The host side in scratch namespaces (root): a scan of a pod namespace holding one end of a
// veth pair, and the tc redirect between that veth and a tap, with frames crossing both ways
// through the tap's file descriptor, as the VMM's virtio-net device will move them.
import Foundation
import SystemSupport
import Testing
@testable import Netlink
@testable import PodNetwork

@Suite(.serialized, .enabled(if: ScratchNamespace.available, "needs root and iproute2"))
struct PodNetworkTests {
    /// "pod" holds eth0 (192.0.2.5/24, 2001:db8::5/64, default via 192.0.2.1, a static
    /// neighbour); "host" holds its peer (192.0.2.1/24), like CNI's bridge side.
    static func makePod() throws -> (pod: ScratchNamespace, host: ScratchNamespace) {
        let pod = try ScratchNamespace()
        let host = try ScratchNamespace()
        try pod.ip("link", "add", "eth0", "address", "02:6b:73:00:00:05", "mtu", "1450", "type", "veth", "peer", "name", "peer0")
        try pod.ip("link", "set", "peer0", "netns", host.name)
        try pod.ip("addr", "add", "192.0.2.5/24", "dev", "eth0")
        try pod.ip("addr", "add", "2001:db8::5/64", "dev", "eth0", "nodad")
        try pod.ip("link", "set", "eth0", "up")
        try pod.ip("route", "add", "default", "via", "192.0.2.1", "dev", "eth0")
        try pod.ip("neigh", "add", "192.0.2.1", "lladdr", "02:6b:73:00:00:01", "dev", "eth0", "nud", "permanent")
        try host.ip("link", "set", "peer0", "address", "02:6b:73:00:00:01")
        try host.ip("addr", "add", "192.0.2.1/24", "dev", "peer0")
        try host.ip("link", "set", "peer0", "up")
        return (pod, host)
    }

    @Test func scanReadsWhatCNIMade() async throws {
        let (pod, host) = try Self.makePod()
        defer { withExtendedLifetime(host) {} }  // deleting it would take the veth pair along
        let snapshot = try await PodNetworkScan.scan(namespacePath: pod.path)
        #expect(snapshot.interfaces.map(\.name) == ["eth0"], "lo is skipped")
        let eth0 = try #require(snapshot.interface(named: "eth0"))
        #expect(eth0.mac == MACAddress("02:6b:73:00:00:05"))
        #expect(eth0.mtu == 1450)
        #expect(eth0.link.kind == "veth")
        #expect(Set(eth0.addresses) == [IPPrefix("192.0.2.5/24")!, IPPrefix("2001:db8::5/64")!])
        let v4 = eth0.routes.filter { $0.family == .ipv4 }
        #expect(v4.contains { $0.destination == nil && $0.gateway == IPAddress("192.0.2.1") })
        #expect(v4.contains { $0.destination == IPPrefix("192.0.2.0/24") && $0.scope == RouteScope.link && $0.preferredSource == IPAddress("192.0.2.5") })
        #expect(eth0.routes.contains { $0.destination == IPPrefix("2001:db8::/64") })
        #expect(!eth0.routes.contains { $0.destination?.address.isIPv6LinkLocal == true })
        #expect(eth0.neighbors.map(\.address) == [IPAddress("192.0.2.1")!])

        // As agent requests.
        let update = eth0.updateInterfaceRequest.interface
        #expect(update.name == "eth0" && update.hwAddr == "02:6b:73:00:00:05" && update.mtu == 1450)
        #expect(Set(update.addresses.map { "\($0.address)/\($0.prefixLength)" }) == ["192.0.2.5/24", "2001:db8::5/64"])
        let routes = snapshot.updateRoutesRequest.routes.routes
        #expect(routes.contains { $0.destination == "" && $0.gateway == "192.0.2.1" && $0.device == "eth0" })
        #expect(routes.contains { $0.destination == "192.0.2.0/24" && $0.scope == 253 && $0.source == "192.0.2.5" })
        let neighbors = try #require(snapshot.addARPNeighborsRequest).neighbors.neighbors
        #expect(neighbors.map(\.lladdr) == ["02:6b:73:00:00:01"])
    }

    @Test func tcRedirectJoinsVethAndTapBothWays() async throws {
        let (pod, host) = try Self.makePod()
        defer { withExtendedLifetime(host) {} }
        try pod.ip("tuntap", "add", "mode", "tap", "name", "tap0_kata")
        let netlink = try NetworkNamespace.routeNetlink(path: pod.path)
        let veth = try netlink.link(named: "eth0")
        let tap = try netlink.link(named: "tap0_kata")
        #expect(tap.kind == "tun")

        try TCRedirect.connect(veth: veth.index, tap: tap.index, using: netlink)
        #expect(try netlink.link(index: tap.index).mtu == 1450, "the tap takes the veth's MTU")
        #expect(try netlink.qdiscs(index: veth.index).contains(where: \.isIngress))
        #expect(try netlink.qdiscs(index: tap.index).contains(where: \.isIngress))
        let toTap = try netlink.ingressFilters(index: veth.index).flatMap(\.mirred)
        let toVeth = try netlink.ingressFilters(index: tap.index).flatMap(\.mirred)
        #expect(toTap.map(\.targetIndex) == [UInt32(tap.index)] && toTap.allSatisfy(\.isEgressRedirect))
        #expect(toVeth.map(\.targetIndex) == [UInt32(veth.index)])
        // iproute2 sees the same.
        #expect(try pod.tc("qdisc", "show", "dev", "eth0").contains("ingress ffff:"))
        let filters = try pod.tc("filter", "show", "dev", "eth0", "parent", "ffff:")
        #expect(filters.contains("u32") && filters.contains("Egress Redirect to device tap0_kata"), "\(filters)")
        #expect(try pod.tc("filter", "show", "dev", "tap0_kata", "parent", "ffff:").contains("Egress Redirect to device eth0"))

        // Be the guest: attach to the tap inside the pod namespace, send an ARP request for the
        // host side's address from eth0's MAC, and read the host's answer back from the tap.
        // Neither frame can cross any other way: the pod's own stack never sees them.
        let reply = try await NetworkNamespace.run(path: pod.path) { () throws -> [UInt8]? in
            let tapFD = try TapForTests(name: "tap0_kata")
            // Asked up to three times: on a loaded machine the first request can go out before
            // the freshly made veth carries frames (a guest's ARP retries the same way).
            for _ in 0..<3 {
                try tapFD.write(ARPFrames.request(from: [0x02, 0x6b, 0x73, 0, 0, 5], ip: [192, 0, 2, 5], asking: [192, 0, 2, 1]))
                if let reply = try tapFD.readFrame(deadline: 3, matching: { ARPFrames.isReply($0, from: [192, 0, 2, 1]) }) { return reply }
            }
            return nil
        }
        if reply == nil {
            print(try pod.tc("-s", "filter", "show", "dev", "eth0", "parent", "ffff:"))
            print(try pod.tc("-s", "filter", "show", "dev", "tap0_kata", "parent", "ffff:"))
            print(try pod.ip("-s", "link"))
            print(try host.ip("-s", "link"))
        }
        let frame = try #require(reply, "no ARP reply came back through the redirects")
        #expect(Array(frame[0..<6]) == [0x02, 0x6b, 0x73, 0, 0, 5], "addressed to the guest NIC's (the veth's) MAC")
        #expect(Array(frame[6..<12]) == [0x02, 0x6b, 0x73, 0, 0, 1])
        // The host side learnt the guest from that exchange.
        #expect(try host.ip("neigh", "show", "192.0.2.5").contains("02:6b:73:00:00:05"))
        let counted = try netlink.ingressFilters(index: tap.index).flatMap(\.mirred).compactMap(\.packets).reduce(0, +)
        #expect(counted >= 1, "the tap -> veth redirect counted the request")

        try TCRedirect.disconnect(veth: veth.index, tap: tap.index, using: netlink)
        #expect(try !netlink.qdiscs(index: veth.index).contains(where: \.isIngress))
        #expect(try !netlink.qdiscs(index: tap.index).contains(where: \.isIngress))
        #expect(try !pod.tc("qdisc", "show", "dev", "eth0").contains("ingress"))
        // Teardown repeats without error, and CNI's veth is still there.
        try TCRedirect.disconnect(veth: veth.index, tap: tap.index, using: netlink)
        try await TCRedirect.disconnect(veth: "eth0", tap: "tap0_kata", namespacePath: pod.path)
        #expect(try netlink.link(named: "eth0").address == MACAddress("02:6b:73:00:00:05"))
    }

    @Test func matchallAndConnectByNameAndRollback() async throws {
        let (pod, host) = try Self.makePod()
        defer { withExtendedLifetime(host) {} }
        try pod.ip("tuntap", "add", "mode", "tap", "name", "tap1")
        do {
            try await TCRedirect.connect(veth: "eth0", tap: "tap1", namespacePath: pod.path, classifier: .matchall)
            #expect(try pod.tc("filter", "show", "dev", "tap1", "parent", "ffff:").contains("matchall"))
        } catch NetlinkError.kernel(_, let errno, let message) where errno == .noEntry {
            // This host's kernel has no cls_matchall ("TC classifier not found"); u32 it is.
            print("matchall unavailable here (\(message ?? "ENOENT")): using u32")
            try await TCRedirect.connect(veth: "eth0", tap: "tap1", namespacePath: pod.path)
        }
        // A second connect finds the qdiscs there: it fails and leaves the first one's in place.
        await #expect(throws: NetlinkError.self) {
            try await TCRedirect.connect(veth: "eth0", tap: "tap1", namespacePath: pod.path)
        }
        try await TCRedirect.disconnect(veth: "eth0", tap: "tap1", namespacePath: pod.path)
        #expect(try !pod.tc("qdisc", "show").contains("ingress"))
        // A failed connect removes what it added: the tap already has an ingress qdisc.
        try pod.tc("qdisc", "add", "dev", "tap1", "ingress")
        await #expect(throws: NetlinkError.self) {
            try await TCRedirect.connect(veth: "eth0", tap: "tap1", namespacePath: pod.path)
        }
        #expect(try !pod.tc("qdisc", "show", "dev", "eth0").contains("ingress"))
    }

    @Sendable static func inode(_ path: String) throws -> UInt {
        var st = stat()
        guard stat(path, &st) == 0 else { throw NetlinkError.system(operation: "stat \(path)", errno: .current) }
        return UInt(st.st_ino)
    }

    /// The blocking overload (async code would pick the async one).
    static func blockingInode(in namespace: String) throws -> UInt {
        try NetworkNamespace.run(path: namespace) { try inode("/proc/thread-self/ns/net") }
    }

    @Test func onlyTheDedicatedThreadChangesNamespace() async throws {
        let inode = Self.inode
        let scratch = try ScratchNamespace()
        let mine = try inode("/proc/thread-self/ns/net")
        let inside = try await NetworkNamespace.run(path: scratch.path) { try Self.inode("/proc/thread-self/ns/net") }
        let blocking = try Self.blockingInode(in: scratch.path)
        #expect(inside == (try inode(scratch.path)) && blocking == inside)
        #expect(try inode("/proc/thread-self/ns/net") == mine)
        #expect(try inode("/proc/self/ns/net") == mine, "the main thread stays where it was")
        // Teardown of a namespace that is already gone is not an error.
        try await TCRedirect.disconnect(veth: "eth0", tap: "tap0", namespacePath: "/var/run/netns/ks-test-gone-\(getpid())")
    }

    @Test func namespaceErrorsAreReported() async {
        await #expect(throws: NetlinkError.self) {
            try await NetworkNamespace.run(path: "/var/run/netns/ks-test-none-\(getpid())") { 1 }
        }
        // A file that is not a network namespace: setns refuses it (EINVAL).
        await #expect(throws: NetlinkError.self) {
            try await NetworkNamespace.run(path: "/proc/self/ns/uts") { 1 }
        }
    }
}

/// A test's own attachment to an existing tap (TUNSETIFF on /dev/net/tun), standing in for the
/// VMM's virtio-net backend.
final class TapForTests {
    let fd: Int32

    init(name: String) throws {
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw NetlinkError.system(operation: "open /dev/net/tun", errno: .current) }
        // struct ifreq: ifr_name[16], ifr_flags (IFF_TAP 0x2 | IFF_NO_PI 0x1000), padding to 40.
        var request = [UInt8](repeating: 0, count: 40)
        for (i, byte) in name.utf8.prefix(15).enumerated() { request[i] = byte }
        request[16] = 0x02
        request[17] = 0x10
        let tunsetiff: UInt = 0x4004_54ca  // _IOW('T', 202, int)
        guard request.withUnsafeMutableBytes({ ioctl(fd, tunsetiff, $0.baseAddress!) }) == 0 else {
            let error = Errno.current
            close(fd)
            throw NetlinkError.system(operation: "TUNSETIFF \(name)", errno: error)
        }
    }

    deinit { close(fd) }

    func write(_ frame: [UInt8]) throws {
        guard frame.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == frame.count else {
            throw NetlinkError.system(operation: "write tap", errno: .current)
        }
    }

    /// Reads frames until one matches or `deadline` seconds pass.
    func readFrame(deadline seconds: Double, matching: ([UInt8]) -> Bool) throws -> [UInt8]? {
        let end = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 2048)
        while Date() < end {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0, matching(Array(buffer[0..<n])) { return Array(buffer[0..<n]) }
        }
        return nil
    }
}

enum ARPFrames {
    static func request(from mac: [UInt8], ip: [UInt8], asking target: [UInt8]) -> [UInt8] {
        [UInt8](repeating: 0xff, count: 6) + mac + [0x08, 0x06]  // Ethernet: broadcast, ARP
            + [0, 1, 0x08, 0x00, 6, 4, 0, 1]  // Ethernet/IPv4, request
            + mac + ip + [UInt8](repeating: 0, count: 6) + target
    }

    static func isReply(_ frame: [UInt8], from ip: [UInt8]) -> Bool {
        frame.count >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[20] == 0 && frame[21] == 2
            && Array(frame[28..<32]) == ip
    }
}
