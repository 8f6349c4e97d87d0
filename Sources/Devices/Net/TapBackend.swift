import CNet
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

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
        let (owned, kernelName) = try Self.open(name, netnsPath: netnsPath)
        self.name = kernelName
        super.init(descriptor: owned)
    }

    /// Opens the tap in the calling thread's namespace or, with `netnsPath`, on a short-lived
    /// thread of its own that joins that namespace first: only that thread changes namespace, and
    /// it ends right after, taking the change with it.
    private static func open(_ name: String, netnsPath: String?) throws(Errno) -> (FileDescriptor, String) {
        guard let netnsPath else { return try openHere(name) }
        do {
            return try WorkerThread.runAndWait(name: "tap-netns") { () throws(Errno) in
                let namespace = try FileDescriptor.open(netnsPath, O_RDONLY)
                _ = try shimResult(ks_setns_net(namespace.rawValue))
                return try openHere(name)
            }
        } catch {
            switch error {
            case .noThread(let errno), .failed(let errno): throw errno
            }
        }
    }

    private static func openHere(_ name: String) throws(Errno) -> (FileDescriptor, String) {
        var out = [CChar](repeating: 0, count: Int(ks_ifnamsiz))
        let fd = FileDescriptor(owning: try shimResult(ks_tap_open(name, &out, Int32(VirtioNetHeader.size))))
        return (fd, String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
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
