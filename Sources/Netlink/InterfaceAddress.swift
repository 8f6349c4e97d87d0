// Interface addresses (RTM_NEWADDR/GETADDR/DELADDR): struct ifaddrmsg + IFA_* attributes.

/// An address on an interface.
public struct InterfaceAddress: Sendable, Equatable {
    public var index: Int32
    /// The interface's own address with its prefix: IFA_LOCAL where the kernel sends it (IPv4),
    /// IFA_ADDRESS otherwise (IPv6).
    public var prefix: IPPrefix
    /// IFA_ADDRESS when it differs from IFA_LOCAL: the peer of a point-to-point link.
    public var peer: IPAddress?
    /// RT_SCOPE_*: 0 global, 253 link, 254 host.
    public var scope: UInt8
    /// IFA_F_* (IFA_FLAGS when present: it carries the bits above 8).
    public var flags: UInt32
    public var label: String?

    public var family: AddressFamily { prefix.address.family }

    /// IFA_F_PERMANENT: configured, not learnt (SLAAC addresses lack it).
    public static let flagPermanent: UInt32 = 0x80
    /// IFA_F_NODAD: skip IPv6 duplicate address detection.
    public static let flagNoDAD: UInt32 = 0x02

    public init(index: Int32, prefix: IPPrefix, peer: IPAddress? = nil, scope: UInt8 = 0, flags: UInt32 = 0, label: String? = nil) {
        self.index = index
        self.prefix = prefix
        self.peer = peer
        self.scope = scope
        self.flags = flags
        self.label = label
    }

    /// Decodes one RTM_NEWADDR payload.
    public static func decode(_ payload: [UInt8]) throws(NetlinkError) -> InterfaceAddress {
        let reader = ByteReader(payload, "ifaddrmsg")
        try reader.require(0, Wire.ifaddrmsgSize)
        let familyByte = try reader.u8(at: 0)
        let prefixLength = try reader.u8(at: 1)
        var flags = UInt32(try reader.u8(at: 2))
        let scope = try reader.u8(at: 3)
        let index = Int32(bitPattern: try reader.u32(at: 4))
        var address: IPAddress?
        var local: IPAddress?
        var label: String?
        for attribute in try NetlinkAttribute.parse(try reader.rest(from: Wire.ifaddrmsgSize), "address attributes") {
            switch attribute.type {
            case AddressAttribute.address: address = try decodeIP(attribute, familyByte)
            case AddressAttribute.local: local = try decodeIP(attribute, familyByte)
            case AddressAttribute.label: label = attribute.string()
            case AddressAttribute.flags: flags = try attribute.u32()
            default: break
            }
        }
        guard let own = local ?? address else { throw .malformed("address on link \(index) without IFA_ADDRESS") }
        guard let prefix = IPPrefix(address: own, length: prefixLength) else {
            throw .malformed("address \(own) with prefix length \(prefixLength)")
        }
        return InterfaceAddress(
            index: index, prefix: prefix, peer: local != nil && address != local ? address : nil,
            scope: scope, flags: flags, label: label)
    }
}

/// An IP address attribute, checked against the family the header announced.
func decodeIP(_ attribute: NetlinkAttribute, _ family: UInt8) throws(NetlinkError) -> IPAddress {
    let expected = family == AddressFamily.ipv4.rawValue ? 4 : family == AddressFamily.ipv6.rawValue ? 16 : -1
    guard attribute.value.count == expected, let ip = IPAddress(bytes: attribute.value) else {
        throw .malformed("attribute \(attribute.type): \(attribute.value.count) bytes for address family \(family)")
    }
    return ip
}

extension NetlinkRequest {
    /// struct ifaddrmsg.
    mutating func appendAddressHeader(family: AddressFamily, prefixLength: UInt8 = 0, flags: UInt8 = 0, scope: UInt8 = 0, index: Int32 = 0) {
        append(family.rawValue)
        append(prefixLength)
        append(flags)
        append(scope)
        append(UInt32(bitPattern: index))
    }

    static func getAddresses(family: AddressFamily) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.getAddress, flags: [.request, .dump])
        request.appendAddressHeader(family: family)
        return request
    }

    /// RTM_NEWADDR (create, or replace with `replace`) or RTM_DELADDR.
    static func address(_ address: InterfaceAddress, delete: Bool = false, replace: Bool = false) -> NetlinkRequest {
        let flags: MessageFlags =
            delete ? [.request, .ack] : replace ? [.request, .ack, .create, .replace] : [.request, .ack, .create, .exclusive]
        var request = NetlinkRequest(type: delete ? MessageType.deleteAddress : MessageType.newAddress, flags: flags)
        request.appendAddressHeader(
            family: address.family, prefixLength: address.prefix.length, flags: UInt8(truncatingIfNeeded: address.flags),
            scope: address.scope, index: address.index)
        request.attribute(AddressAttribute.local, address.prefix.address.bytes)
        request.attribute(AddressAttribute.address, (address.peer ?? address.prefix.address).bytes)
        if !delete && address.flags > 0xff { request.attribute(AddressAttribute.flags, integer: address.flags) }
        return request
    }
}
