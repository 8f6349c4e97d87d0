// Typed operations over RouteNetlink: links, addresses, routes, neighbours, ingress qdiscs and
// redirect filters. Every method works in the namespace the socket was opened in.

extension RouteNetlink {
    // MARK: links

    public func links() throws(NetlinkError) -> [Link] {
        var links: [Link] = []
        for payload in try dump(.getLinks(), replyType: MessageType.newLink, operation: "RTM_GETLINK") {
            links.append(try Link.decode(payload))
        }
        return links
    }

    public func link(named name: String) throws(NetlinkError) -> Link {
        guard let link = try links().first(where: { $0.name == name }) else { throw .notFound("link \(name)") }
        return link
    }

    public func link(index: Int32) throws(NetlinkError) -> Link {
        guard let link = try links().first(where: { $0.index == index }) else { throw .notFound("link \(index)") }
        return link
    }

    /// RTM_SETLINK: up/down, MTU, name (the link must be down to be renamed), MAC address.
    public func setLink(index: Int32, _ change: LinkChange) throws(NetlinkError) {
        try execute(.setLink(index: index, change), operation: "RTM_SETLINK \(index)")
    }

    /// Creates a dummy link or a veth pair (scratch setups and tests).
    public func addLink(name: String, kind: NewLinkKind) throws(NetlinkError) {
        try execute(.addLink(name: name, kind: kind), operation: "RTM_NEWLINK \(name)")
    }

    public func deleteLink(index: Int32) throws(NetlinkError) {
        try execute(.deleteLink(index: index), operation: "RTM_DELLINK \(index)")
    }

    // MARK: addresses

    /// Addresses of `family` (`.unspecified`: both), of every link or only of `index`.
    public func addresses(family: AddressFamily = .unspecified, index: Int32? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        var addresses: [InterfaceAddress] = []
        for payload in try dump(.getAddresses(family: family), replyType: MessageType.newAddress, operation: "RTM_GETADDR") {
            let address = try InterfaceAddress.decode(payload)
            if index == nil || address.index == index { addresses.append(address) }
        }
        return addresses
    }

    public func addAddress(_ address: InterfaceAddress, replace: Bool = false) throws(NetlinkError) {
        try execute(.address(address, replace: replace), operation: "RTM_NEWADDR \(address.prefix) on \(address.index)")
    }

    public func deleteAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try execute(.address(address, delete: true), operation: "RTM_DELADDR \(address.prefix) on \(address.index)")
    }

    // MARK: routes

    /// Routes of `family` (`.unspecified`: both) in `table` (nil: every table).
    public func routes(family: AddressFamily = .unspecified, table: UInt32? = RouteTable.main) throws(NetlinkError) -> [Route] {
        var routes: [Route] = []
        for payload in try dump(.getRoutes(family: family), replyType: MessageType.newRoute, operation: "RTM_GETROUTE") {
            let route = try Route.decode(payload)
            if table == nil || route.table == table { routes.append(route) }
        }
        return routes
    }

    public func addRoute(_ route: Route, replace: Bool = false) throws(NetlinkError) {
        try execute(.route(route, replace: replace), operation: "RTM_NEWROUTE \(Self.describe(route))")
    }

    public func deleteRoute(_ route: Route) throws(NetlinkError) {
        try execute(.route(route, delete: true), operation: "RTM_DELROUTE \(Self.describe(route))")
    }

    static func describe(_ route: Route) -> String {
        var text = route.destination.map { "\($0)" } ?? "default"
        if let gateway = route.gateway { text += " via \(gateway)" }
        if let index = route.outputIndex { text += " dev \(index)" }
        return text
    }

    // MARK: neighbours

    /// IPv4 and IPv6 neighbour entries (`index`: of one link only).
    public func neighbors(index: Int32? = nil) throws(NetlinkError) -> [Neighbor] {
        var neighbors: [Neighbor] = []
        for family in [AddressFamily.ipv4, .ipv6] {
            for payload in try dump(.getNeighbors(family: family), replyType: MessageType.newNeighbor, operation: "RTM_GETNEIGH") {
                let neighbor = try Neighbor.decode(payload)
                if index == nil || neighbor.index == index { neighbors.append(neighbor) }
            }
        }
        return neighbors
    }

    /// Creates or replaces the entry (as `ip neigh replace`).
    public func setNeighbor(_ neighbor: Neighbor) throws(NetlinkError) {
        try execute(.neighbor(neighbor), operation: "RTM_NEWNEIGH \(neighbor.address) on \(neighbor.index)")
    }

    public func deleteNeighbor(_ neighbor: Neighbor) throws(NetlinkError) {
        try execute(.neighbor(neighbor, delete: true), operation: "RTM_DELNEIGH \(neighbor.address) on \(neighbor.index)")
    }

    // MARK: traffic control

    public func qdiscs(index: Int32? = nil) throws(NetlinkError) -> [Qdisc] {
        var qdiscs: [Qdisc] = []
        for payload in try dump(.getQdiscs(), replyType: MessageType.newQdisc, operation: "RTM_GETQDISC") {
            let qdisc = try Qdisc.decode(payload)
            if index == nil || qdisc.index == index { qdiscs.append(qdisc) }
        }
        return qdiscs
    }

    /// Adds the ingress qdisc (ffff:) to `index`; EEXIST when it has one.
    public func addIngressQdisc(index: Int32) throws(NetlinkError) {
        try execute(.addIngressQdisc(index: index), operation: "RTM_NEWQDISC ingress on \(index)")
    }

    /// Removes the ingress qdisc of `index` and with it every filter on it.
    public func deleteIngressQdisc(index: Int32) throws(NetlinkError) {
        try execute(.deleteIngressQdisc(index: index), operation: "RTM_DELQDISC ingress on \(index)")
    }

    /// Filters on the ingress qdisc of `index`.
    public func ingressFilters(index: Int32) throws(NetlinkError) -> [Filter] {
        var filters: [Filter] = []
        for payload in try dump(.getIngressFilters(index: index), replyType: MessageType.newFilter, operation: "RTM_GETTFILTER") {
            filters.append(try Filter.decode(payload))
        }
        return filters
    }

    /// A filter on the ingress qdisc of `index` redirecting every packet to the egress of `target`.
    public func addRedirectFilter(
        index: Int32, target: Int32, classifier: RedirectClassifier = .u32, priority: UInt16 = 1
    ) throws(NetlinkError) {
        try execute(
            .addRedirectFilter(index: index, target: target, classifier: classifier, priority: priority),
            operation: "RTM_NEWTFILTER \(classifier.rawValue) on \(index) -> \(target)")
    }
}
