// The guest's side of pod networking: the shim tells the agent what the pod's interfaces look
// like in the pod's namespace on the host, and the agent makes the guest's NICs match (Kata's
// model). Everything goes through one RouteNetlink, so tests run it in a scratch namespace.
//
//   UpdateInterface: find the link by MAC (the guest NIC carries the veth's MAC), else by name,
//                    else the guest's only NIC (a warm or restored VM's has another MAC, and
//                    the name it got at boot); rename it, give it the MAC, set the MTU,
//                    replace its addresses, bring it up.
//   UpdateRoutes:    for every device named, drop its main-table routes and add the listed ones,
//                    link-scope routes (no gateway) first so the gateways are reachable.
//   AddARPNeighbors: static neighbour entries (ip neigh replace).
import AgentAPI
import Netlink

struct GuestNetwork {
    let netlink: RouteNetlink

    // MARK: interfaces

    func updateInterface(_ request: Kata_Agent_V1_Interface) throws -> Kata_Agent_V1_Interface {
        let mac: MACAddress?
        if request.hwAddr.isEmpty {
            mac = nil
        } else {
            guard let parsed = MACAddress(request.hwAddr) else {
                throw AgentError.invalidRequest(field: "interface.hw_addr", reason: "\"\(request.hwAddr)\" is not a MAC address")
            }
            mac = parsed
        }
        guard mac != nil || !request.name.isEmpty else {
            throw AgentError.invalidRequest(field: "interface", reason: "hw_addr or name is required")
        }
        let addresses = try request.addresses.enumerated().map { i, address in
            try Self.prefix(address, field: "interface.addresses[\(i)]")
        }

        let links = try netlink.links()
        let nics = links.filter { !$0.isLoopback }
        let byMAC = mac.flatMap { mac in nics.first { $0.address == mac } }
        // A guest with one NIC has only the one to configure, whatever it was named at boot.
        let only = nics.count == 1 ? nics.first : nil
        guard let link = byMAC ?? links.first(where: { $0.name == request.name }) ?? only else {
            throw NetlinkError.notFound("link with MAC \(request.hwAddr) or name \"\(request.name)\"")
        }

        if !request.name.isEmpty, request.name != link.name {
            // A link is renamed only while down.
            try netlink.setLink(index: link.index, LinkChange(up: false))
            try netlink.setLink(index: link.index, LinkChange(name: request.name))
        }
        if let mac, link.address != mac {
            // Found by name: a NIC booted before its pod was known (a warm sandbox) takes the
            // veth's MAC, as a NIC made for the pod has it from the start.
            try netlink.setLink(index: link.index, LinkChange(up: false))
            try netlink.setLink(index: link.index, LinkChange(address: mac))
        }
        if request.mtu != 0, request.mtu != link.mtu {
            try netlink.setLink(index: link.index, LinkChange(mtu: request.mtu))
        }
        for old in try netlink.addresses(index: link.index) where !old.prefix.address.isIPv6LinkLocal {
            try netlink.deleteAddress(old)
        }
        for prefix in addresses {
            // No duplicate address detection: the address is CNI's, already checked on the host,
            // and a tentative address would not answer for a second or two.
            let flags = prefix.address.family == .ipv6 ? InterfaceAddress.flagNoDAD : 0
            try netlink.addAddress(InterfaceAddress(index: link.index, prefix: prefix, flags: flags), replace: true)
        }
        try netlink.setLink(index: link.index, LinkChange(up: true))
        return try Self.interface(netlink.link(index: link.index), addresses: netlink.addresses(index: link.index))
    }

    func listInterfaces() throws -> [Kata_Agent_V1_Interface] {
        let addresses = try netlink.addresses()
        return try netlink.links().map { link in
            Self.interface(link, addresses: addresses.filter { $0.index == link.index })
        }
    }

    /// Brings `lo` up if it is down (PID 1 at boot: a fresh guest's loopback is down).
    func bringLoopbackUp() throws -> Bool {
        guard let lo = try netlink.links().first(where: \.isLoopback), !lo.isUp else { return false }
        try netlink.setLink(index: lo.index, LinkChange(up: true))
        return true
    }

    /// PID 1 at boot: `lo` up before any container starts (127.0.0.1 works in every pod, with
    /// or without pod networking). A failure is logged: the agent itself needs no loopback.
    static func bringLoopbackUpAtBoot(log: AgentLog) {
        do {
            if try GuestNetwork(netlink: RouteNetlink()).bringLoopbackUp() { log.info("loopback up") }
        } catch {
            log.warning("bringing loopback up: \(error)")
        }
    }

    static func interface(_ link: Link, addresses: [InterfaceAddress]) -> Kata_Agent_V1_Interface {
        var interface = Kata_Agent_V1_Interface()
        interface.name = link.name
        interface.hwAddr = link.address.map { $0.bytes.isEmpty ? "" : "\($0)" } ?? ""
        interface.mtu = link.mtu
        interface.up = link.isUp
        interface.addresses = addresses.map { address in
            var ip = Kata_Agent_V1_IPAddress()
            ip.ipv6 = address.family == .ipv6
            ip.address = "\(address.prefix.address)"
            ip.prefixLength = UInt32(address.prefix.length)
            return ip
        }
        return interface
    }

    static func prefix(_ address: Kata_Agent_V1_IPAddress, field: String) throws -> IPPrefix {
        guard let ip = IPAddress(address.address) else {
            throw AgentError.invalidRequest(field: "\(field).address", reason: "\"\(address.address)\" is not an IP address")
        }
        guard (ip.family == .ipv6) == address.ipv6 else {
            throw AgentError.invalidRequest(field: "\(field).ipv6", reason: "\(ip) is \(address.ipv6 ? "not " : "")an IPv6 address")
        }
        guard address.prefixLength <= UInt32(ip.bytes.count * 8), let prefix = IPPrefix(address: ip, length: UInt8(address.prefixLength)) else {
            throw AgentError.invalidRequest(field: "\(field).prefix_length", reason: "\(address.prefixLength) is too long for \(ip)")
        }
        return prefix
    }
}
