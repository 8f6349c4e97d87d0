// Routes (RTM_NEWROUTE/GETROUTE/DELROUTE): struct rtmsg + RTA_* attributes.

/// RT_SCOPE_* of rtmsg.rtm_scope and ifaddrmsg.ifa_scope.
public enum RouteScope {
    public static let universe: UInt8 = 0
    public static let site: UInt8 = 200
    public static let link: UInt8 = 253
    public static let host: UInt8 = 254
    public static let nowhere: UInt8 = 255
}

/// RT_TABLE_*, RTPROT_*, RTN_*, RTNH_F_* values we use.
public enum RouteTable {
    public static let main: UInt32 = 254
    public static let local: UInt32 = 255
}

public enum RouteProtocol {
    public static let unspecified: UInt8 = 0
    /// Installed by the kernel for an address's subnet.
    public static let kernel: UInt8 = 2
    /// Installed by an administrator (iproute2's default).
    public static let boot: UInt8 = 3
    public static let `static`: UInt8 = 4
}

public enum RouteType {
    public static let unicast: UInt8 = 1
    public static let local: UInt8 = 2
    public static let broadcast: UInt8 = 3
    public static let multicast: UInt8 = 5
}

/// A route in one table.
public struct Route: Sendable, Equatable {
    public var family: AddressFamily
    /// nil: the default route (0.0.0.0/0 or ::/0).
    public var destination: IPPrefix?
    public var gateway: IPAddress?
    /// RTA_OIF.
    public var outputIndex: Int32?
    /// RTA_PREFSRC: the source address the kernel picks for traffic on this route.
    public var preferredSource: IPAddress?
    public var scope: UInt8
    public var table: UInt32
    public var proto: UInt8
    public var type: UInt8
    /// RTA_PRIORITY (the metric).
    public var priority: UInt32?
    /// RTNH_F_* of rtm_flags (RTNH_F_ONLINK: the gateway is on the link even outside its subnet).
    public var flags: UInt32

    public static let flagOnLink: UInt32 = 0x4

    public init(
        family: AddressFamily, destination: IPPrefix? = nil, gateway: IPAddress? = nil, outputIndex: Int32? = nil,
        preferredSource: IPAddress? = nil, scope: UInt8 = RouteScope.universe, table: UInt32 = RouteTable.main,
        proto: UInt8 = RouteProtocol.boot, type: UInt8 = RouteType.unicast, priority: UInt32? = nil, flags: UInt32 = 0
    ) {
        self.family = family
        self.destination = destination
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.preferredSource = preferredSource
        self.scope = scope
        self.table = table
        self.proto = proto
        self.type = type
        self.priority = priority
        self.flags = flags
    }

    /// Decodes one RTM_NEWROUTE payload.
    public static func decode(_ payload: [UInt8]) throws(NetlinkError) -> Route {
        let reader = ByteReader(payload, "rtmsg")
        try reader.require(0, Wire.rtmsgSize)
        let familyByte = try reader.u8(at: 0)
        guard let family = AddressFamily(rawValue: familyByte), family != .unspecified else {
            throw .malformed("route of address family \(familyByte)")
        }
        let destinationLength = try reader.u8(at: 1)
        var route = Route(
            family: family, scope: try reader.u8(at: 6), table: UInt32(try reader.u8(at: 4)),
            proto: try reader.u8(at: 5), type: try reader.u8(at: 7), flags: try reader.u32(at: 8))
        var destination: IPAddress?
        for attribute in try NetlinkAttribute.parse(try reader.rest(from: Wire.rtmsgSize), "route attributes") {
            switch attribute.type {
            case RouteAttribute.destination: destination = try decodeIP(attribute, familyByte)
            case RouteAttribute.gateway: route.gateway = try decodeIP(attribute, familyByte)
            case RouteAttribute.preferredSource: route.preferredSource = try decodeIP(attribute, familyByte)
            case RouteAttribute.outputInterface: route.outputIndex = try attribute.i32()
            case RouteAttribute.priority: route.priority = try attribute.u32()
            case RouteAttribute.table: route.table = try attribute.u32()
            default: break
            }
        }
        if let destination {
            guard let prefix = IPPrefix(address: destination, length: destinationLength) else {
                throw .malformed("route to \(destination) with prefix length \(destinationLength)")
            }
            route.destination = prefix
        } else if destinationLength != 0 {
            throw .malformed("route with prefix length \(destinationLength) but no RTA_DST")
        }
        return route
    }
}

extension NetlinkRequest {
    /// struct rtmsg.
    mutating func appendRouteHeader(_ route: Route) {
        append(route.family.rawValue)
        append(route.destination?.length ?? 0)
        append(UInt8(0))  // rtm_src_len
        append(UInt8(0))  // rtm_tos
        append(UInt8(truncatingIfNeeded: route.table < 256 ? route.table : 252))  // RT_TABLE_COMPAT
        append(route.proto)
        append(route.scope)
        append(route.type)
        append(route.flags)
    }

    static func getRoutes(family: AddressFamily) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.getRoute, flags: [.request, .dump])
        request.appendRouteHeader(Route(family: family, table: 0, proto: 0, type: 0))
        return request
    }

    /// RTM_NEWROUTE (create; `replace` replaces a route to the same destination) or RTM_DELROUTE.
    static func route(_ route: Route, delete: Bool = false, replace: Bool = false) throws(NetlinkError) -> NetlinkRequest {
        for ip in [route.destination?.address, route.gateway, route.preferredSource].compactMap({ $0 }) where ip.family != route.family {
            throw .invalidArgument("route: \(ip) is not an \(route.family) address")
        }
        let flags: MessageFlags =
            delete ? [.request, .ack] : replace ? [.request, .ack, .create, .replace] : [.request, .ack, .create, .exclusive]
        var request = NetlinkRequest(type: delete ? MessageType.deleteRoute : MessageType.newRoute, flags: flags)
        request.appendRouteHeader(route)
        if let destination = route.destination, destination.length > 0 {
            request.attribute(RouteAttribute.destination, destination.network.address.bytes)
        }
        if let gateway = route.gateway { request.attribute(RouteAttribute.gateway, gateway.bytes) }
        if let index = route.outputIndex { request.attribute(RouteAttribute.outputInterface, integer: index) }
        if let source = route.preferredSource { request.attribute(RouteAttribute.preferredSource, source.bytes) }
        if let priority = route.priority { request.attribute(RouteAttribute.priority, integer: priority) }
        request.attribute(RouteAttribute.table, integer: route.table)
        return request
    }
}
