/// One network interface of the guest: a virtio-net device backed by a tap (Kata's model: the
/// tap sits in the pod's network namespace, beside the interface the CNI plugin made).
public struct NetworkInterface: Sendable, Equatable {
    /// The tap's name; created if absent ("tap%d" lets the kernel pick one).
    public var tapName: String
    /// The network namespace to open the tap in (/var/run/netns/x, /proc/PID/ns/net); nil:
    /// the caller's own.
    public var netnsPath: String?
    /// The guest's MAC address, six bytes.
    public var mac: [UInt8]
    /// The MTU offered to the guest (VIRTIO_NET_F_MTU).
    public var mtu: UInt16

    public init(tapName: String, netnsPath: String? = nil, mac: [UInt8], mtu: UInt16 = 1500) {
        self.tapName = tapName
        self.netnsPath = netnsPath
        self.mac = mac
        self.mtu = mtu
    }
}
