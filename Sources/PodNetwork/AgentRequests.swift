// A scanned pod network as the agent API requests that recreate it in the guest, in the order
// the runtime sends them: one UpdateInterface per interface, then one UpdateRoutes with every
// route, then AddARPNeighbors (when there are any).
import AgentAPI
import Netlink

extension PodInterface {
    /// UpdateInterface for this interface: the guest NIC has this MAC (the veth's, not the tap's)
    /// and is renamed to this name.
    public var updateInterfaceRequest: Kata_Agent_V1_UpdateInterfaceRequest {
        var interface = Kata_Agent_V1_Interface()
        interface.name = name
        interface.hwAddr = mac.map { "\($0)" } ?? ""
        interface.mtu = mtu
        interface.up = true
        interface.addresses = addresses.map { prefix in
            var ip = Kata_Agent_V1_IPAddress()
            ip.ipv6 = prefix.address.family == .ipv6
            ip.address = "\(prefix.address)"
            ip.prefixLength = UInt32(prefix.length)
            return ip
        }
        var request = Kata_Agent_V1_UpdateInterfaceRequest()
        request.interface = interface
        return request
    }
}

extension PodNetworkSnapshot {
    public var updateInterfaceRequests: [Kata_Agent_V1_UpdateInterfaceRequest] {
        interfaces.map(\.updateInterfaceRequest)
    }

    /// Every copied route, naming its device by the interface's name.
    public var updateRoutesRequest: Kata_Agent_V1_UpdateRoutesRequest {
        var routes = Kata_Agent_V1_Routes()
        for interface in interfaces {
            for route in interface.routes {
                var out = Kata_Agent_V1_Route()
                out.destination = route.destination.map { "\($0)" } ?? ""
                out.gateway = route.gateway.map { "\($0)" } ?? ""
                out.device = interface.name
                out.source = route.preferredSource.map { "\($0)" } ?? ""
                out.scope = UInt32(route.scope)
                routes.routes.append(out)
            }
        }
        var request = Kata_Agent_V1_UpdateRoutesRequest()
        request.routes = routes
        return request
    }

    /// nil when no interface has a neighbour worth copying.
    public var addARPNeighborsRequest: Kata_Agent_V1_AddARPNeighborsRequest? {
        var neighbors = Kata_Agent_V1_ARPNeighbors()
        for interface in interfaces {
            for neighbor in interface.neighbors {
                guard let mac = neighbor.linkAddress else { continue }
                var out = Kata_Agent_V1_ARPNeighbor()
                out.toIpAddress.ipv6 = neighbor.family == .ipv6
                out.toIpAddress.address = "\(neighbor.address)"
                out.device = interface.name
                out.lladdr = "\(mac)"
                out.state = Int32(NeighborState.permanent.rawValue)
                out.flags = Int32(neighbor.flags)
                neighbors.neighbors.append(out)
            }
        }
        guard !neighbors.neighbors.isEmpty else { return nil }
        var request = Kata_Agent_V1_AddARPNeighborsRequest()
        request.neighbors = neighbors
        return request
    }
}
