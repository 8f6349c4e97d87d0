import CShims
import SystemSupport

/// A tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, vnet header of 12 bytes) as a virtio-net
/// backend, optionally created inside another network namespace (Kata's model: the tap sits in
/// the pod's namespace beside the CNI's veth). The tap disappears when the descriptor closes,
/// unless someone made it persistent.
public final class TapBackend: FrameDescriptorBackend, @unchecked Sendable {
    /// The interface name the kernel gave the tap.
    public let name: String

    /// Opens (or creates) the tap `name` ("tap%d" lets the kernel pick), inside the network
    /// namespace at `netnsPath` (/var/run/netns/x, /proc/PID/ns/net) when given.
    public init(name: String, netnsPath: String? = nil) throws(Errno) {
        var out = [CChar](repeating: 0, count: Int(ks_ifnamsiz))
        let fd: Int32
        if let netnsPath {
            fd = ks_tap_open(netnsPath, name, &out, Int32(VirtioNetHeader.size))
        } else {
            fd = ks_tap_open(nil, name, &out, Int32(VirtioNetHeader.size))
        }
        let owned = FileDescriptor(owning: try shimResult(fd))
        self.name = String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        super.init(descriptor: owned)
    }

    /// TUNSETOFFLOAD: what the tap may hand us (partial checksums, TSO superframes).
    public override func setOffloads(_ offloads: NetOffloads) throws(Errno) {
        var flags: UInt32 = 0
        if offloads.contains(.csum) { flags |= ks_tun_f_csum }
        if offloads.contains(.tso4) { flags |= ks_tun_f_tso4 }
        if offloads.contains(.tso6) { flags |= ks_tun_f_tso6 }
        if offloads.contains(.tsoECN) { flags |= ks_tun_f_tso_ecn }
        _ = try shimResult(ks_tap_set_offload(descriptor.rawValue, flags))
    }
}
