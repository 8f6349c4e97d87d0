// What CNI made in a pod's network namespace, read the way Kata reads it: every interface but
// loopback (and our own taps), with its MAC, MTU and addresses, the main table's routes and the
// static or confirmed neighbours. The runtime hands each interface to the guest: a tap for the
// device, then UpdateInterface, UpdateRoutes and AddARPNeighbors over the agent API.
import Netlink

/// One interface of the pod's namespace (usually CNI's veth `eth0`).
public struct PodInterface: Sendable, Equatable {
    public var link: Link
    /// Every address but IPv6 link-local ones (the guest derives its own from the same MAC).
    public var addresses: [IPPrefix]
    /// Main-table routes leaving through this interface.
    public var routes: [Route]
    /// Permanent or reachable neighbours on this interface that have a link-layer address.
    public var neighbors: [Neighbor]

    public var name: String { link.name }
    public var index: Int32 { link.index }
    public var mac: MACAddress? { link.address }
    public var mtu: UInt32 { link.mtu }
}

/// The pod's network as CNI left it.
public struct PodNetworkSnapshot: Sendable, Equatable {
    public var interfaces: [PodInterface]

    public func interface(named name: String) -> PodInterface? { interfaces.first { $0.name == name } }
}

public enum PodNetworkScan {
    /// Scans the namespace at `path` (the pod's, from the OCI spec's network namespace entry).
    public static func scan(namespacePath path: String) async throws -> PodNetworkSnapshot {
        try await NetworkNamespace.run(path: path) { try scan(using: RouteNetlink()) }
    }

    /// Scans the namespace `netlink` was opened in.
    public static func scan(using netlink: RouteNetlink) throws(NetlinkError) -> PodNetworkSnapshot {
        let links = try netlink.links().filter(isPodInterface)
        let addresses = try netlink.addresses()
        let routes = try netlink.routes(table: RouteTable.main).filter(isCopiedRoute)
        let neighbors = try netlink.neighbors().filter(isCopiedNeighbor)
        let interfaces = links.map { link in
            PodInterface(
                link: link,
                addresses: addresses.filter { $0.index == link.index && !$0.prefix.address.isIPv6LinkLocal }.map(\.prefix),
                routes: routes.filter { $0.outputIndex == link.index },
                neighbors: neighbors.filter { $0.index == link.index })
        }
        return PodNetworkSnapshot(interfaces: interfaces)
    }

    /// Not loopback, and not a tun/tap device (ours, from an earlier connect).
    static func isPodInterface(_ link: Link) -> Bool {
        !link.isLoopback && link.kind != "tun"
    }

    /// Unicast routes, without the IPv6 link-local and multicast ones every IPv6 link has
    /// (the guest kernel makes those itself).
    static func isCopiedRoute(_ route: Route) -> Bool {
        guard route.type == RouteType.unicast else { return false }
        if let destination = route.destination, destination.address.family == .ipv6 {
            let first = destination.address.bytes[0]
            if first == 0xff || destination.address.isIPv6LinkLocal { return false }
        }
        return true
    }

    static func isCopiedNeighbor(_ neighbor: Neighbor) -> Bool {
        neighbor.linkAddress.map { !$0.bytes.isEmpty } == true
            && !neighbor.state.intersection([.permanent, .reachable]).isEmpty
    }
}
