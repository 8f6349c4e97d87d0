// Traffic control (RTM_NEWQDISC/DELQDISC/GETQDISC, RTM_NEWTFILTER/GETTFILTER): struct tcmsg +
// TCA_* attributes. Just what Kata's "tcfilter" model needs: an ingress qdisc on a device and a
// classifier on it that matches every packet and redirects it, with the mirred action, to the
// egress of another device.
//
//   ingress qdisc:  tcmsg{ifindex, handle ffff:0000, parent ffff:fff1 (TC_H_INGRESS)}, TCA_KIND "ingress"
//   filter:         tcmsg{ifindex, handle 0, parent ffff:0000, info prio<<16 | htons(ETH_P_ALL)}
//                   TCA_KIND "u32" | "matchall", TCA_OPTIONS {
//                     u32:      TCA_U32_SEL {flags TERMINAL, nkeys 1, key 0/0 at 0} (matches all)
//                     both:     TCA_U32_ACT | TCA_MATCHALL_ACT { 1: {TCA_ACT_KIND "mirred",
//                                 TCA_ACT_OPTIONS {TCA_MIRRED_PARMS tc_mirred{action STOLEN,
//                                                  eaction EGRESS_REDIR, ifindex}}}}}

public enum TrafficControl {
    /// TC_H_INGRESS: the parent of an ingress qdisc.
    public static let ingressParent: UInt32 = 0xffff_fff1
    /// ffff:0000, the ingress qdisc's handle and so its filters' parent.
    public static let ingressHandle: UInt32 = 0xffff_0000
    /// ETH_P_ALL in host order (the wire carries it in network order).
    public static let protocolAll: UInt16 = 0x0003
    /// TC_ACT_STOLEN: the packet is consumed (by the redirect).
    static let actionStolen: Int32 = 4
    /// TCA_EGRESS_REDIR.
    static let egressRedirect: Int32 = 1
    static let u32Terminal: UInt8 = 1
}

/// A queueing discipline.
public struct Qdisc: Sendable, Equatable {
    public var index: Int32
    public var handle: UInt32
    public var parent: UInt32
    public var kind: String

    public var isIngress: Bool { kind == "ingress" && parent == TrafficControl.ingressParent }

    public static func decode(_ payload: [UInt8]) throws(NetlinkError) -> Qdisc {
        let reader = ByteReader(payload, "tcmsg")
        try reader.require(0, Wire.tcmsgSize)
        let attributes = try NetlinkAttribute.parse(try reader.rest(from: Wire.tcmsgSize), "qdisc attributes")
        return Qdisc(
            index: try reader.i32(at: 4), handle: try reader.u32(at: 8), parent: try reader.u32(at: 12),
            kind: attributes.first(TCAttribute.kind)?.string() ?? "")
    }
}

/// The classifier of a redirect filter. Kata uses u32 matching everything; matchall is the
/// simpler classifier made for this (kernel 4.8+).
public enum RedirectClassifier: String, Sendable, Equatable {
    case u32
    case matchall
}

/// A mirred action found in a filter.
public struct MirredAction: Sendable, Equatable {
    /// TCA_EGRESS_REDIR (1), TCA_EGRESS_MIRROR (2), TCA_INGRESS_REDIR (3), TCA_INGRESS_MIRROR (4).
    public var direction: Int32
    public var targetIndex: UInt32
    /// Packets and bytes the action has handled (TCA_STATS_BASIC), when the kernel reported them.
    public var packets: UInt32?
    public var bytes: UInt64?

    public var isEgressRedirect: Bool { direction == TrafficControl.egressRedirect }
}

/// A classifier entry. A u32 dump also lists the hash table it creates (no actions there).
public struct Filter: Sendable, Equatable {
    public var index: Int32
    public var handle: UInt32
    public var parent: UInt32
    public var priority: UInt16
    /// The ethertype matched, host order (3: ETH_P_ALL).
    public var protocolNumber: UInt16
    public var kind: String
    public var mirred: [MirredAction]

    public static func decode(_ payload: [UInt8]) throws(NetlinkError) -> Filter {
        let reader = ByteReader(payload, "tcmsg")
        try reader.require(0, Wire.tcmsgSize)
        let info = try reader.u32(at: 16)
        let attributes = try NetlinkAttribute.parse(try reader.rest(from: Wire.tcmsgSize), "filter attributes")
        let kind = attributes.first(TCAttribute.kind)?.string() ?? ""
        var mirred: [MirredAction] = []
        if let options = try attributes.first(TCAttribute.options)?.nested() {
            let actionsType = kind == "matchall" ? TCAttribute.matchallActions : TCAttribute.u32Actions
            if kind == "u32" || kind == "matchall", let actions = try options.first(actionsType)?.nested() {
                for action in actions {
                    if let decoded = try MirredAction.decode(action.nested()) { mirred.append(decoded) }
                }
            }
        }
        return Filter(
            index: try reader.i32(at: 4), handle: try reader.u32(at: 8), parent: try reader.u32(at: 12),
            priority: UInt16(info >> 16), protocolNumber: UInt16(truncatingIfNeeded: info).byteSwapped,
            kind: kind, mirred: mirred)
    }
}

extension MirredAction {
    /// One action's attributes; nil unless it is a mirred action with parameters.
    static func decode(_ attributes: [NetlinkAttribute]) throws(NetlinkError) -> MirredAction? {
        guard attributes.first(TCAttribute.actionKind)?.string() == "mirred",
            let parameters = try attributes.first(TCAttribute.actionOptions)?.nested().first(TCAttribute.mirredParameters)
        else { return nil }
        // struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex.
        let reader = ByteReader(parameters.value, "tc_mirred")
        var action = MirredAction(direction: try reader.i32(at: 20), targetIndex: try reader.u32(at: 24))
        // TCA_ACT_STATS (4) { TCA_STATS_BASIC (1): struct gnet_stats_basic {u64 bytes; u32 packets} }
        if let basic = try attributes.first(TCAttribute.actionStatistics)?.nested().first(TCAttribute.statisticsBasic) {
            let stats = ByteReader(basic.value, "gnet_stats_basic")
            action.bytes = try stats.load(UInt64.self, at: 0)
            action.packets = try stats.u32(at: 8)
        }
        return action
    }
}

extension NetlinkRequest {
    /// struct tcmsg.
    mutating func appendTCHeader(index: Int32, handle: UInt32, parent: UInt32, info: UInt32 = 0) {
        append(AddressFamily.unspecified.rawValue)
        append(UInt8(0))
        append(UInt16(0))
        append(index)
        append(handle)
        append(parent)
        append(info)
    }

    static func addIngressQdisc(index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.newQdisc, flags: [.request, .ack, .create, .exclusive])
        request.appendTCHeader(index: index, handle: TrafficControl.ingressHandle, parent: TrafficControl.ingressParent)
        request.attribute(TCAttribute.kind, string: "ingress")
        return request
    }

    static func deleteIngressQdisc(index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.deleteQdisc, flags: [.request, .ack])
        request.appendTCHeader(index: index, handle: TrafficControl.ingressHandle, parent: TrafficControl.ingressParent)
        request.attribute(TCAttribute.kind, string: "ingress")
        return request
    }

    static func getQdiscs() -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.getQdisc, flags: [.request, .dump])
        request.appendTCHeader(index: 0, handle: 0, parent: 0)
        return request
    }

    static func getIngressFilters(index: Int32) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.getFilter, flags: [.request, .dump])
        request.appendTCHeader(index: index, handle: 0, parent: TrafficControl.ingressHandle)
        return request
    }

    /// A filter on `index`'s ingress qdisc sending every packet to the egress of `target`.
    static func addRedirectFilter(index: Int32, target: Int32, classifier: RedirectClassifier, priority: UInt16) -> NetlinkRequest {
        var request = NetlinkRequest(type: MessageType.newFilter, flags: [.request, .ack, .create, .exclusive])
        let info = UInt32(priority) << 16 | UInt32(TrafficControl.protocolAll.bigEndian)
        request.appendTCHeader(index: index, handle: 0, parent: TrafficControl.ingressHandle, info: info)
        request.attribute(TCAttribute.kind, string: classifier.rawValue)
        request.nested(TCAttribute.options) { options in
            switch classifier {
            case .u32:
                // struct tc_u32_sel (16 bytes) + one struct tc_u32_key (16 bytes) of zeros:
                // mask 0 at offset 0 matches every packet.
                var selector = ByteWriter()
                selector.append(TrafficControl.u32Terminal)  // flags
                selector.append(UInt8(0))  // offshift
                selector.append(UInt8(1))  // nkeys
                selector.append(UInt8(0))  // padding
                selector.append(UInt16(0))  // offmask
                selector.append(UInt16(0))  // off
                selector.append(Int16(0))  // offoff
                selector.append(Int16(0))  // hoff
                selector.append(UInt32(0))  // hmask
                selector.append([UInt8](repeating: 0, count: 16))  // key: mask, val, off, offmask
                options.attribute(TCAttribute.u32Selector, selector.bytes)
                options.nested(TCAttribute.u32Actions) { $0.appendMirredRedirect(target: target) }
            case .matchall:
                options.nested(TCAttribute.matchallActions) { $0.appendMirredRedirect(target: target) }
            }
        }
        return request
    }

    /// Action 1 of an action list: mirred egress redirect to `target`, packet stolen.
    mutating func appendMirredRedirect(target: Int32) {
        nested(1) { action in
            action.attribute(TCAttribute.actionKind, string: "mirred")
            action.nested(TCAttribute.actionOptions) { options in
                var parameters = ByteWriter()
                parameters.append(UInt32(0))  // index
                parameters.append(UInt32(0))  // capab
                parameters.append(TrafficControl.actionStolen)
                parameters.append(Int32(0))  // refcnt
                parameters.append(Int32(0))  // bindcnt
                parameters.append(TrafficControl.egressRedirect)
                parameters.append(UInt32(bitPattern: target))
                options.attribute(TCAttribute.mirredParameters, parameters.bytes)
            }
        }
    }
}
