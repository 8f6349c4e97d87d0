// Routes and neighbours of GuestNetwork: requests from the agent API turned into netlink routes
// and neighbour entries in the guest, and the main table read back.
import AgentAPI
import Netlink

extension GuestNetwork {
    func updateRoutes(_ requested: [Kata_Agent_V1_Route]) throws -> [Kata_Agent_V1_Route] {
        let links = try netlink.links()
        let routes = try requested.enumerated().map { i, route in
            try Self.route(route, links: links, field: "routes[\(i)]")
        }
        let devices = Set(routes.compactMap(\.outputIndex))
        for old in try netlink.routes(table: RouteTable.main) {
            guard let index = old.outputIndex, devices.contains(index), Self.isReplaceable(old) else { continue }
            try netlink.deleteRoute(old)
        }
        // Link-scope routes first: a gateway must be reachable when its route is added.
        for route in routes.filter({ $0.gateway == nil }) + routes.filter({ $0.gateway != nil }) {
            try netlink.addRoute(route, replace: true)
        }
        return try listRoutes()
    }

    func listRoutes() throws -> [Kata_Agent_V1_Route] {
        let names = Dictionary(try netlink.links().map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
        return try netlink.routes(table: RouteTable.main).map { route in
            var out = Kata_Agent_V1_Route()
            out.destination = route.destination.map { "\($0)" } ?? ""
            out.gateway = route.gateway.map { "\($0)" } ?? ""
            out.device = route.outputIndex.flatMap { names[$0] } ?? ""
            out.source = route.preferredSource.map { "\($0)" } ?? ""
            out.scope = UInt32(route.scope)
            return out
        }
    }

    func addNeighbors(_ requested: [Kata_Agent_V1_ARPNeighbor]) throws {
        let links = try netlink.links()
        for (i, entry) in requested.enumerated() {
            let field = "neighbors[\(i)]"
            guard let ip = IPAddress(entry.toIpAddress.address) else {
                throw AgentError.invalidRequest(field: "\(field).to_ip_address", reason: "\"\(entry.toIpAddress.address)\" is not an IP address")
            }
            guard let mac = MACAddress(entry.lladdr) else {
                throw AgentError.invalidRequest(field: "\(field).lladdr", reason: "\"\(entry.lladdr)\" is not a MAC address")
            }
            guard (0...0xffff).contains(entry.state), (0...0xff).contains(entry.flags) else {
                throw AgentError.invalidRequest(field: field, reason: "state or flags out of range")
            }
            let index = try Self.device(entry.device, links: links, field: "\(field).device")
            let state = entry.state == 0 ? NeighborState.permanent : NeighborState(rawValue: UInt16(entry.state))
            try netlink.setNeighbor(Neighbor(index: index, address: ip, linkAddress: mac, state: state, flags: UInt8(entry.flags)))
        }
    }

    /// Routes the guest kernel keeps for itself on every IPv6 link (fe80::/64, multicast) stay.
    static func isReplaceable(_ route: Route) -> Bool {
        guard route.type == RouteType.unicast else { return false }
        if let destination = route.destination, destination.address.family == .ipv6,
            destination.address.isIPv6LinkLocal || destination.address.bytes[0] == 0xff
        {
            return false
        }
        return true
    }

    static func device(_ name: String, links: [Link], field: String) throws -> Int32 {
        guard !name.isEmpty else { throw AgentError.invalidRequest(field: field, reason: "a device is required") }
        guard let link = links.first(where: { $0.name == name }) else { throw NetlinkError.notFound("device \(name)") }
        return link.index
    }

    static func route(_ request: Kata_Agent_V1_Route, links: [Link], field: String) throws -> Route {
        func address(_ text: String, _ name: String) throws -> IPAddress? {
            if text.isEmpty { return nil }
            guard let ip = IPAddress(text) else {
                throw AgentError.invalidRequest(field: "\(field).\(name)", reason: "\"\(text)\" is not an IP address")
            }
            return ip
        }
        var destination: IPPrefix?
        if !request.destination.isEmpty {
            guard let prefix = IPPrefix(request.destination) else {
                throw AgentError.invalidRequest(field: "\(field).destination", reason: "\"\(request.destination)\" is not an address/prefix")
            }
            destination = prefix.length == 0 ? nil : prefix.network
        }
        let gateway = try address(request.gateway, "gateway")
        let source = try address(request.source, "source")
        let families = Set([IPPrefix(request.destination)?.address.family, gateway?.family, source?.family].compactMap { $0 })
        guard families.count <= 1 else {
            throw AgentError.invalidRequest(field: field, reason: "destination, gateway and source mix IPv4 and IPv6")
        }
        guard request.scope <= 255 else { throw AgentError.invalidRequest(field: "\(field).scope", reason: "\(request.scope) > 255") }
        return Route(
            family: families.first ?? .ipv4, destination: destination, gateway: gateway,
            outputIndex: try device(request.device, links: links, field: "\(field).device"), preferredSource: source,
            scope: UInt8(request.scope), table: RouteTable.main, proto: RouteProtocol.boot)
    }
}
