// Neighbours (RTM_NEWNEIGH/GETNEIGH): struct ndmsg + NDA_* attributes (the ARP and NDP tables).

/// NUD_* bits of ndmsg.ndm_state.
public struct NeighborState: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let incomplete = NeighborState(rawValue: 0x01)
    public static let reachable = NeighborState(rawValue: 0x02)
    public static let stale = NeighborState(rawValue: 0x04)
    public static let delay = NeighborState(rawValue: 0x08)
    public static let probe = NeighborState(rawValue: 0x10)
    public static let failed = NeighborState(rawValue: 0x20)
    public static let noARP = NeighborState(rawValue: 0x40)
    public static let permanent = NeighborState(rawValue: 0x80)
}

/// A neighbour table entry.
public struct Neighbor: Sendable, Equatable {
    public var index: Int32
    public var address: IPAddress
    public var linkAddress: MACAddress?
    public var state: NeighborState
    /// NTF_* of ndm_flags (0x80 NTF_ROUTER, 0x08 NTF_PROXY).
    public var flags: UInt8

    public var family: AddressFamily { address.family }

    public init(index: Int32, address: IPAddress, linkAddress: MACAddress?, state: NeighborState = .permanent, flags: UInt8 = 0) {
        self.index = index
        self.address = address
        self.linkAddress = linkAddress
        self.state = state
        self.flags = flags
    }

    /// Decodes one RTM_NEWNEIGH payload. Entries of other families (bridge fdb) are `malformed`
    /// for this type; the dump asks for IPv4 and IPv6 only.
    public static func decode(_ payload: [UInt8]) throws(NetlinkError) -> Neighbor {
        let reader = ByteReader(payload, "ndmsg")
        try reader.require(0, Wire.ndmsgSize)
        let familyByte = try reader.u8(at: 0)
        let index = try reader.i32(at: 4)
        let state = NeighborState(rawValue: try reader.u16(at: 8))
        let flags = try reader.u8(at: 10)
        var address: IPAddress?
        var linkAddress: MACAddress?
        for attribute in try NetlinkAttribute.parse(try reader.rest(from: Wire.ndmsgSize), "neighbour attributes") {
            switch attribute.type {
            case NeighborAttribute.destination: address = try decodeIP(attribute, familyByte)
            case NeighborAttribute.linkAddress: linkAddress = MACAddress(bytes: attribute.value)
            default: break
            }
        }
        guard let address else { throw .malformed("neighbour on link \(index) without NDA_DST") }
        return Neighbor(index: index, address: address, linkAddress: linkAddress, state: state, flags: flags)
    }
}

extension NetlinkRequest {
    /// struct ndmsg.
    mutating func appendNeighborHeader(family: AddressFamily, index: Int32 = 0, state: NeighborState = [], flags: UInt8 = 0) {
        append(family.rawValue)
        append(UInt8(0))
        append(UInt16(0))
        append(index)
        append(state.rawValue)
        append(flags)
        append(UInt8(0))  // ndm_type
    }

    static func getNeighbors(family: AddressFamily) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.getNeighbor, flags: [.request, .dump])
        request.appendNeighborHeader(family: family)
        return request
    }

    /// RTM_NEWNEIGH, creating or replacing the entry for the address (as `ip neigh replace`).
    static func neighbor(_ neighbor: Neighbor, delete: Bool = false) -> NetlinkRequest {
        var request = NetlinkRequest(
            type: delete ? MessageType.deleteNeighbor : MessageType.newNeighbor,
            flags: delete ? [.request, .ack] : [.request, .ack, .create, .replace])
        request.appendNeighborHeader(family: neighbor.family, index: neighbor.index, state: neighbor.state, flags: neighbor.flags)
        request.attribute(NeighborAttribute.destination, neighbor.address.bytes)
        if let mac = neighbor.linkAddress { request.attribute(NeighborAttribute.linkAddress, mac.bytes) }
        return request
    }
}
