// Numbers from the kernel's uapi headers (linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h,
// neighbour.h, pkt_sched.h, pkt_cls.h, tc_act/tc_mirred.h). Swift's Glibc module imports none
// of them; they are part of the kernel ABI and never change.

/// nlmsghdr.nlmsg_type values shared by every netlink family, and the rtnetlink ones we use.
public enum MessageType {
    public static let noop: UInt16 = 1
    public static let error: UInt16 = 2
    public static let done: UInt16 = 3
    public static let overrun: UInt16 = 4

    public static let newLink: UInt16 = 16
    public static let deleteLink: UInt16 = 17
    public static let getLink: UInt16 = 18
    public static let setLink: UInt16 = 19
    public static let newAddress: UInt16 = 20
    public static let deleteAddress: UInt16 = 21
    public static let getAddress: UInt16 = 22
    public static let newRoute: UInt16 = 24
    public static let deleteRoute: UInt16 = 25
    public static let getRoute: UInt16 = 26
    public static let newNeighbor: UInt16 = 28
    public static let deleteNeighbor: UInt16 = 29
    public static let getNeighbor: UInt16 = 30
    public static let newQdisc: UInt16 = 36
    public static let deleteQdisc: UInt16 = 37
    public static let getQdisc: UInt16 = 38
    public static let newFilter: UInt16 = 44
    public static let deleteFilter: UInt16 = 45
    public static let getFilter: UInt16 = 46
}

/// nlmsghdr.nlmsg_flags.
public struct MessageFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let request = MessageFlags(rawValue: 0x01)
    public static let multi = MessageFlags(rawValue: 0x02)
    public static let ack = MessageFlags(rawValue: 0x04)
    public static let echo = MessageFlags(rawValue: 0x08)
    public static let dumpInterrupted = MessageFlags(rawValue: 0x10)
    // GET requests
    public static let root = MessageFlags(rawValue: 0x100)
    public static let match = MessageFlags(rawValue: 0x200)
    public static let dump: MessageFlags = [.root, .match]
    // NEW requests
    public static let replace = MessageFlags(rawValue: 0x100)
    public static let exclusive = MessageFlags(rawValue: 0x200)
    public static let create = MessageFlags(rawValue: 0x400)
    public static let append = MessageFlags(rawValue: 0x800)
    // NLMSG_ERROR replies
    public static let capped = MessageFlags(rawValue: 0x100)
    public static let ackTLVs = MessageFlags(rawValue: 0x200)
}

/// Address families (AF_*), as carried in the first byte of every rtnetlink header.
public enum AddressFamily: UInt8, Sendable, Hashable, CustomStringConvertible {
    case unspecified = 0
    case ipv4 = 2
    case ipv6 = 10

    public var description: String {
        switch self {
        case .unspecified: "unspec"
        case .ipv4: "inet"
        case .ipv6: "inet6"
        }
    }
}

/// Sizes and attribute numbers. Internal: the typed structs are the public surface.
enum Wire {
    static let headerSize = 16        // struct nlmsghdr
    static let attributeHeaderSize = 4  // struct nlattr
    static let ifinfomsgSize = 16
    static let ifaddrmsgSize = 8
    static let rtmsgSize = 12
    static let ndmsgSize = 12
    static let tcmsgSize = 20

    static let nestedFlag: UInt16 = 0x8000     // NLA_F_NESTED
    static let byteOrderFlag: UInt16 = 0x4000  // NLA_F_NET_BYTEORDER
    static let attributeTypeMask: UInt16 = 0x3fff

    /// NLMSGERR_ATTR_MSG: the kernel's text in an extended ack.
    static let extendedAckMessage: UInt16 = 1

    static func align(_ n: Int) -> Int { (n + 3) & ~3 }
}

/// IFLA_* (struct ifinfomsg attributes) and IFLA_INFO_*.
enum LinkAttribute {
    static let address: UInt16 = 1
    static let broadcast: UInt16 = 2
    static let name: UInt16 = 3
    static let mtu: UInt16 = 4
    static let link: UInt16 = 5
    static let master: UInt16 = 10
    static let operState: UInt16 = 16
    static let linkInfo: UInt16 = 18
    static let netNamespaceFD: UInt16 = 28
    static let infoKind: UInt16 = 1
    static let infoData: UInt16 = 2
    static let vethPeer: UInt16 = 1  // VETH_INFO_PEER, inside IFLA_INFO_DATA
}

/// IFA_* (struct ifaddrmsg attributes).
enum AddressAttribute {
    static let address: UInt16 = 1
    static let local: UInt16 = 2
    static let label: UInt16 = 3
    static let broadcast: UInt16 = 4
    static let flags: UInt16 = 8
}

/// RTA_* (struct rtmsg attributes).
enum RouteAttribute {
    static let destination: UInt16 = 1
    static let source: UInt16 = 2
    static let inputInterface: UInt16 = 3
    static let outputInterface: UInt16 = 4
    static let gateway: UInt16 = 5
    static let priority: UInt16 = 6
    static let preferredSource: UInt16 = 7
    static let table: UInt16 = 15
}

/// NDA_* (struct ndmsg attributes).
enum NeighborAttribute {
    static let destination: UInt16 = 1
    static let linkAddress: UInt16 = 2
}

/// TCA_* (struct tcmsg attributes) and the classifier/action attributes below them.
enum TCAttribute {
    static let kind: UInt16 = 1
    static let options: UInt16 = 2

    static let u32ClassID: UInt16 = 1
    static let u32Selector: UInt16 = 5
    static let u32Actions: UInt16 = 7
    static let matchallActions: UInt16 = 2

    static let actionKind: UInt16 = 1       // TCA_ACT_KIND
    static let actionOptions: UInt16 = 2    // TCA_ACT_OPTIONS
    static let actionStatistics: UInt16 = 4  // TCA_ACT_STATS
    static let statisticsBasic: UInt16 = 1   // TCA_STATS_BASIC
    static let mirredParameters: UInt16 = 2  // TCA_MIRRED_PARMS
}
