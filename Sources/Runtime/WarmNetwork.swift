// A warm sandbox's NIC (docs/warm-sandboxes.md). A warm VM boots before its pod's network
// namespace exists, so it gets one virtio-net device on a tap in a holding namespace of its own
// (`<sandbox>/netns`). When a pod with a network adopts the sandbox, the tap moves into the pod's
// namespace: its descriptor, held by the VMM, stays valid across the move. There it is joined to
// the pod's veth like any pod's tap (PodNetworking.connect). The agent then gives the guest NIC
// the veth's MAC, addresses and routes (PodNetworking.configureGuest).

import Hypervisor
import Netlink
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

enum WarmNetwork {
    /// The tap's name: the one PodNetworking gives the pod's first (only) interface.
    static let tapName = "tap0_kata"
    /// The MTU the warm NIC offers the guest; a pod whose veth needs more boots its own VM.
    static let mtu: UInt16 = 1500

    /// The NIC a warm VM boots with: a random locally administered MAC (the agent replaces it
    /// with the veth's), on the tap in the holding namespace. A template's maker names its own.
    static func interface(holdingNamespace: String, tapName: String = tapName, mtu: UInt16 = mtu) -> NetworkInterface {
        var generator = SystemRandomNumberGenerator()
        var mac = (0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) }
        mac[0] = (mac[0] & 0xfe) | 0x02  // unicast, locally administered
        return NetworkInterface(tapName: tapName, netnsPath: holdingNamespace, mac: mac, mtu: mtu)
    }

    /// Whether the warm NIC can serve the pod's network: one interface, an MTU it offers.
    static func check(_ network: PodNetworking) throws(RuntimeError) {
        guard network.pairs.count == 1, let interface = network.snapshot.interfaces.first else {
            throw .network(operation: "take a warm sandbox", reason: "the pod has \(network.pairs.count) interfaces; a warm VM has one NIC")
        }
        guard interface.mtu <= UInt32(mtu) else {
            throw .network(operation: "take a warm sandbox", reason: "\(interface.name) has MTU \(interface.mtu); a warm VM's NIC offers \(mtu)")
        }
    }

    /// Moves the tap from the holding namespace into the pod's and joins it to the veth; the
    /// holding namespace is removed.
    static func attach(_ network: PodNetworking, holdingNamespace: String) async throws(RuntimeError) {
        try check(network)
        do {
            let pod = try FileDescriptor.open(network.namespacePath, O_RDONLY | O_CLOEXEC)
            try await NetworkNamespace.run(path: holdingNamespace) {
                let netlink = try RouteNetlink()
                let tap = try netlink.link(named: tapName)
                try netlink.setLink(index: tap.index, LinkChange(namespaceFD: pod.rawValue))
            }
        } catch {
            throw .network(operation: "move \(tapName) into \(network.namespacePath)", reason: "\(error)")
        }
        NetworkNamespace.remove(at: holdingNamespace)
        try await network.connect()
    }
}
