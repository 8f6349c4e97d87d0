// Kata's "tcfilter" network model: the pod's veth and our tap are joined by two tc redirects, so
// every frame arriving on one leaves through the other, with no bridge and no address on the tap.
//
//   pod netns:   eth0 (veth, CNI's) ──ingress qdisc ffff: ── u32 match-all ── mirred egress ──▶ tap0
//                tap0 (ours)        ──ingress qdisc ffff: ── u32 match-all ── mirred egress ──▶ eth0
//   tap0's file descriptor is the guest NIC's backend (virtio-net); the guest NIC has eth0's MAC.
import Netlink
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

public enum TCRedirect {
    /// Joins `veth` and `tap` (indexes in the namespace of `netlink`): the tap gets the veth's
    /// MTU and is brought up, both get an ingress qdisc, and each redirects everything it
    /// receives to the other's egress. On failure whatever was added is removed again.
    public static func connect(
        veth: Int32, tap: Int32, using netlink: RouteNetlink, classifier: RedirectClassifier = .u32
    ) throws(NetlinkError) {
        let vethLink = try netlink.link(index: veth)
        try netlink.setLink(index: tap, LinkChange(up: true, mtu: vethLink.mtu))
        var added: [Int32] = []
        do {
            for index in [veth, tap] {
                try netlink.addIngressQdisc(index: index)
                added.append(index)
            }
            try netlink.addRedirectFilter(index: veth, target: tap, classifier: classifier)
            try netlink.addRedirectFilter(index: tap, target: veth, classifier: classifier)
        } catch {
            for index in added { try? netlink.deleteIngressQdisc(index: index) }
            throw error
        }
    }

    /// Removes both ingress qdiscs (and with them the filters). A qdisc or device that is already
    /// gone (the tap closes with its last descriptor) is not an error, so teardown can repeat.
    /// CNI's veth itself is left alone.
    public static func disconnect(veth: Int32, tap: Int32, using netlink: RouteNetlink) throws(NetlinkError) {
        var firstError: NetlinkError?
        for index in [tap, veth] {
            do {
                try removeIngress(index: index, using: netlink)
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }

    /// Deletes the ingress qdisc of `index`; one already gone is not an error.
    static func removeIngress(index: Int32, using netlink: RouteNetlink) throws(NetlinkError) {
        do {
            try netlink.deleteIngressQdisc(index: index)
        } catch {
            if !isAlreadyGone(error) { throw error }
        }
    }

    /// The same, inside the namespace at `path`, with interface names.
    public static func connect(
        veth: String, tap: String, namespacePath path: String, classifier: RedirectClassifier = .u32
    ) async throws {
        try await NetworkNamespace.run(path: path) {
            let netlink = try RouteNetlink()
            try connect(
                veth: try netlink.link(named: veth).index, tap: try netlink.link(named: tap).index,
                using: netlink, classifier: classifier)
        }
    }

    /// `disconnect` inside the namespace at `path`; a tap that no longer exists is skipped, and so
    /// is a namespace that is already gone (CNI removed it: everything in it went with it).
    public static func disconnect(veth: String, tap: String, namespacePath path: String) async throws {
        guard access(path, F_OK) == 0 else { return }
        try await NetworkNamespace.run(path: path) {
            let netlink = try RouteNetlink()
            let links = try netlink.links()
            for name in [tap, veth] {
                guard let link = links.first(where: { $0.name == name }) else { continue }
                try removeIngress(index: link.index, using: netlink)
            }
        }
    }

    /// EINVAL ("Cannot find specified qdisc"), ENOENT, ENODEV.
    static func isAlreadyGone(_ error: NetlinkError) -> Bool {
        guard case .kernel(_, let errno, _) = error else {
            if case .notFound = error { return true }
            return false
        }
        return [Errno.invalidArgument, .noEntry, Errno(rawValue: 19 /* ENODEV */)].contains(errno)
    }
}
