// Links (RTM_NEWLINK/GETLINK/SETLINK): struct ifinfomsg + IFLA_* attributes.

/// IFF_* bits of ifinfomsg.ifi_flags.
public struct LinkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let up = LinkFlags(rawValue: 0x1)
    public static let broadcast = LinkFlags(rawValue: 0x2)
    public static let loopback = LinkFlags(rawValue: 0x8)
    public static let pointToPoint = LinkFlags(rawValue: 0x10)
    public static let running = LinkFlags(rawValue: 0x40)
    public static let noARP = LinkFlags(rawValue: 0x80)
    public static let multicast = LinkFlags(rawValue: 0x1000)
    public static let lowerUp = LinkFlags(rawValue: 0x10000)
}

/// A network interface as RTM_GETLINK reports it.
public struct Link: Sendable, Equatable {
    public var index: Int32
    public var name: String
    /// IFLA_ADDRESS; nil for devices without one (tun in L3 mode).
    public var address: MACAddress?
    public var mtu: UInt32
    public var flags: LinkFlags
    /// ARPHRD_*: 1 Ethernet (veth, tap, dummy), 772 loopback, 65534 none (tun).
    public var hardwareType: UInt16
    /// IFLA_INFO_KIND: "veth", "tun", "dummy", "bridge"...; nil for physical devices and loopback.
    public var kind: String?
    /// IFLA_LINK: the peer's index for a veth (in the peer's namespace), or the lower device.
    public var parentIndex: Int32?
    /// IFLA_OPERSTATE (RFC 2863): 6 up, 2 down, 0 unknown.
    public var operState: UInt8?

    public var isUp: Bool { flags.contains(.up) }
    public var isLoopback: Bool { flags.contains(.loopback) }

    public static let arphrdEther: UInt16 = 1
    public static let arphrdLoopback: UInt16 = 772

    /// Decodes one RTM_NEWLINK message payload.
    public static func decode(_ payload: [UInt8]) throws(NetlinkError) -> Link {
        let reader = ByteReader(payload, "ifinfomsg")
        try reader.require(0, Wire.ifinfomsgSize)
        let attributes = try NetlinkAttribute.parse(try reader.rest(from: Wire.ifinfomsgSize), "link attributes")
        var link = Link(
            index: try reader.i32(at: 4), name: "", address: nil, mtu: 0,
            flags: LinkFlags(rawValue: try reader.u32(at: 8)), hardwareType: try reader.u16(at: 2),
            kind: nil, parentIndex: nil, operState: nil)
        for attribute in attributes {
            switch attribute.type {
            case LinkAttribute.name: link.name = attribute.string()
            case LinkAttribute.address: link.address = MACAddress(bytes: attribute.value)
            case LinkAttribute.mtu: link.mtu = try attribute.u32()
            case LinkAttribute.link: link.parentIndex = try attribute.i32()
            case LinkAttribute.operState: link.operState = try attribute.u8()
            case LinkAttribute.linkInfo:
                if let kind = try attribute.nested().first(LinkAttribute.infoKind) { link.kind = kind.string() }
            default: break
            }
        }
        guard !link.name.isEmpty else { throw .malformed("link \(link.index) without IFLA_IFNAME") }
        return link
    }
}

/// What `RouteNetlink.setLink` changes; nil fields stay as they are.
public struct LinkChange: Sendable, Equatable {
    public var up: Bool?
    public var mtu: UInt32?
    public var name: String?
    public var address: MACAddress?
    /// Moves the link into the network namespace this descriptor refers to (IFLA_NET_NS_FD).
    public var namespaceFD: Int32?

    public init(up: Bool? = nil, mtu: UInt32? = nil, name: String? = nil, address: MACAddress? = nil, namespaceFD: Int32? = nil) {
        self.up = up
        self.mtu = mtu
        self.name = name
        self.address = address
        self.namespaceFD = namespaceFD
    }
}

/// Link kinds `RouteNetlink.addLink` creates (tests and scratch setups; CNI makes the real ones).
public enum NewLinkKind: Sendable, Equatable {
    case dummy
    /// A veth pair; the peer is created in the same namespace.
    case veth(peerName: String)
}

/// Interface names: 1 to 15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace.
func validateInterfaceName(_ name: String) throws(NetlinkError) {
    let bytes = Array(name.utf8)
    guard (1...15).contains(bytes.count),
        !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 })
    else { throw .invalidArgument("interface name \"\(name)\": 1 to 15 bytes, no '/', ':' or spaces") }
}

extension NetlinkRequest {
    /// struct ifinfomsg.
    mutating func appendLinkHeader(index: Int32, flags: LinkFlags = [], change: LinkFlags = []) {
        append(AddressFamily.unspecified.rawValue)
        append(UInt8(0))
        append(UInt16(0))  // ifi_type
        append(index)
        append(flags.rawValue)
        append(change.rawValue)
    }

    static func getLinks() -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.getLink, flags: [.request, .dump])
        request.appendLinkHeader(index: 0)
        return request
    }

    static func setLink(index: Int32, _ change: LinkChange) throws(NetlinkError) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.setLink, flags: [.request, .ack])
        if let up = change.up {
            request.appendLinkHeader(index: index, flags: up ? .up : [], change: .up)
        } else {
            request.appendLinkHeader(index: index)
        }
        if let mtu = change.mtu { request.attribute(LinkAttribute.mtu, integer: mtu) }
        if let name = change.name {
            try validateInterfaceName(name)
            request.attribute(LinkAttribute.name, string: name)
        }
        if let address = change.address { request.attribute(LinkAttribute.address, address.bytes) }
        if let fd = change.namespaceFD { request.attribute(LinkAttribute.netNamespaceFD, integer: UInt32(bitPattern: fd)) }
        return request
    }

    static func addLink(name: String, kind: NewLinkKind) throws(NetlinkError) -> NetlinkRequest {
        try validateInterfaceName(name)
        var request = NetlinkRequest(type: MessageType.newLink, flags: [.request, .ack, .create, .exclusive])
        request.appendLinkHeader(index: 0)
        request.attribute(LinkAttribute.name, string: name)
        switch kind {
        case .dummy:
            request.nested(LinkAttribute.linkInfo) { $0.attribute(LinkAttribute.infoKind, string: "dummy") }
        case .veth(let peer):
            try validateInterfaceName(peer)
            request.nested(LinkAttribute.linkInfo) { info in
                info.attribute(LinkAttribute.infoKind, string: "veth")
                info.nested(LinkAttribute.infoData) { data in
                    data.nested(LinkAttribute.vethPeer) { peerInfo in
                        peerInfo.appendLinkHeader(index: 0)
                        peerInfo.attribute(LinkAttribute.name, string: peer)
                    }
                }
            }
        }
        return request
    }

    static func deleteLink(index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.deleteLink, flags: [.request, .ack])
        request.appendLinkHeader(index: index)
        return request
    }
}
