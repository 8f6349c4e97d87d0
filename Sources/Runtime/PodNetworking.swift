// A pod's network in its VM, Kata's model (docs/pod-network.md, docs/networking.md): the shim
// reads what CNI made in the pod's network namespace (the path CRI put in the sandbox
// container's spec), gives the VM one virtio-net device per interface, backed by a tap the
// hypervisor opens in that namespace, joins tap and veth with tc ingress redirects both ways,
// and has the agent recreate the interface (the veth's MAC, addresses, MTU), its routes and
// neighbours in the guest. Teardown removes our redirects; the taps go with the VM's
// descriptors; the veth and the namespace stay CNI's.

import AgentAPI
import Hypervisor
import Logging
import Netlink
import PodNetwork
import TTRPC

struct PodNetworking: Sendable {
    struct Pair: Sendable {
        var veth: String
        var tap: String
    }

    let namespacePath: String
    let snapshot: PodNetworkSnapshot
    let pairs: [Pair]

    /// Reads the namespace at `path`; nil when it holds no interface but loopback.
    static func scan(namespacePath path: String) async throws(RuntimeError) -> PodNetworking? {
        let snapshot: PodNetworkSnapshot
        do {
            snapshot = try await PodNetworkScan.scan(namespacePath: path)
        } catch {
            throw .network(operation: "read the pod's network namespace \(path)", reason: "\(error)")
        }
        guard !snapshot.interfaces.isEmpty else { return nil }
        for interface in snapshot.interfaces where interface.mac?.bytes.count != 6 {
            throw .network(operation: "interface \(interface.name) in \(path)", reason: "has no Ethernet address")
        }
        let pairs = snapshot.interfaces.indices.map { Pair(veth: snapshot.interfaces[$0].name, tap: "tap\($0)_kata") }
        return PodNetworking(namespacePath: path, snapshot: snapshot, pairs: pairs)
    }

    /// The guest NICs: the veth's MAC and MTU on a tap of ours in the pod's namespace.
    var interfaces: [NetworkInterface] {
        zip(snapshot.interfaces, pairs).map { interface, pair in
            NetworkInterface(
                tapName: pair.tap, netnsPath: namespacePath, mac: interface.mac?.bytes ?? [],
                mtu: UInt16(clamping: interface.mtu))
        }
    }

    /// tc redirects between each veth and its tap (once the hypervisor has opened the taps).
    func connect() async throws(RuntimeError) {
        for pair in pairs {
            do {
                try await TCRedirect.connect(veth: pair.veth, tap: pair.tap, namespacePath: namespacePath)
            } catch {
                await disconnect(logger: nil)
                throw .network(operation: "redirect \(pair.veth) <-> \(pair.tap) in \(namespacePath)", reason: "\(error)")
            }
        }
    }

    /// The guest's side, over the agent API: interfaces, then routes, then neighbours.
    func configureGuest(_ agent: Kata_Agent_V1_AgentServiceClient) async throws(RuntimeError) {
        let options = TTRPCCallOptions(timeout: .seconds(30))
        do {
            for request in snapshot.updateInterfaceRequests {
                _ = try await agent.updateInterface(request, options: options)
            }
            _ = try await agent.updateRoutes(snapshot.updateRoutesRequest, options: options)
            if let neighbors = snapshot.addARPNeighborsRequest {
                _ = try await agent.addARPNeighbors(neighbors, options: options)
            }
        } catch let error as TTRPCError {
            throw .agentCall(operation: "network setup", error)
        } catch {
            throw .network(operation: "configure the guest's network", reason: "\(error)")
        }
    }

    /// Removes our redirects (idempotent; a namespace CNI already deleted is skipped).
    func disconnect(logger: Logger?) async {
        for pair in pairs {
            do {
                try await TCRedirect.disconnect(veth: pair.veth, tap: pair.tap, namespacePath: namespacePath)
            } catch {
                logger?.warning("pod network: removing the redirect \(pair.veth) <-> \(pair.tap): \(error)")
            }
        }
    }
}
