// Numbers of virtio-net (virtio 1.x, section 5.1), named once.

/// virtio-net feature bits (spec 5.1.3).
public enum NetFeature {
    /// VIRTIO_NET_F_CSUM: the device takes TX packets with a partial checksum (NEEDS_CSUM).
    public static let csum: UInt64 = 1 << 0
    /// VIRTIO_NET_F_GUEST_CSUM: the driver takes RX packets with a partial checksum.
    public static let guestCsum: UInt64 = 1 << 1
    /// VIRTIO_NET_F_MTU: the `mtu` config field is valid.
    public static let mtu: UInt64 = 1 << 3
    /// VIRTIO_NET_F_MAC: the `mac` config field is valid.
    public static let mac: UInt64 = 1 << 5
    /// VIRTIO_NET_F_GUEST_TSO4 / TSO6 / ECN: the driver takes TCP segmentation offload packets.
    public static let guestTSO4: UInt64 = 1 << 7
    public static let guestTSO6: UInt64 = 1 << 8
    public static let guestECN: UInt64 = 1 << 9
    /// VIRTIO_NET_F_HOST_TSO4 / TSO6 / ECN: the device takes TSO packets from the driver.
    public static let hostTSO4: UInt64 = 1 << 11
    public static let hostTSO6: UInt64 = 1 << 12
    public static let hostECN: UInt64 = 1 << 13
    /// VIRTIO_NET_F_MRG_RXBUF: one received packet may span several RX chains (num_buffers).
    public static let mergeableRxBuffers: UInt64 = 1 << 15
    /// VIRTIO_NET_F_STATUS: the `status` config field is valid.
    public static let status: UInt64 = 1 << 16

    /// The checksum and segmentation offloads; offered only when the backend passes a vnet
    /// header through (a tap with IFF_VNET_HDR does).
    public static let offloads: UInt64 =
        csum | guestCsum | guestTSO4 | guestTSO6 | guestECN | hostTSO4 | hostTSO6 | hostECN
}

/// struct virtio_net_hdr_v1 (spec 5.1.6): 12 bytes in front of every packet on both queues
/// once VIRTIO_F_VERSION_1 is negotiated. Little-endian.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 12

    /// flags: VIRTIO_NET_HDR_F_NEEDS_CSUM (1), VIRTIO_NET_HDR_F_DATA_VALID (2).
    public static let flagNeedsCsum: UInt8 = 1
    public static let flagDataValid: UInt8 = 2
    /// gso_type values; the ECN bit may be or-ed into the TCP ones.
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoECN: UInt8 = 0x80

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var csumStart: UInt16 = 0
    public var csumOffset: UInt16 = 0
    public var numBuffers: UInt16 = 0

    public init(
        flags: UInt8 = 0, gsoType: UInt8 = 0, headerLength: UInt16 = 0, gsoSize: UInt16 = 0,
        csumStart: UInt16 = 0, csumOffset: UInt16 = 0, numBuffers: UInt16 = 0
    ) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.gsoSize = gsoSize
        self.csumStart = csumStart
        self.csumOffset = csumOffset
        self.numBuffers = numBuffers
    }

    /// Parses the first 12 bytes of `bytes`; nil when there are fewer.
    public init?(bytes: some Collection<UInt8>) {
        let b = Array(bytes.prefix(Self.size))
        guard b.count == Self.size else { return nil }
        func u16(_ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
        self.init(
            flags: b[0], gsoType: b[1], headerLength: u16(2), gsoSize: u16(4), csumStart: u16(6),
            csumOffset: u16(8), numBuffers: u16(10))
    }

    public var bytes: [UInt8] {
        var b = [flags, gsoType]
        for v in [headerLength, gsoSize, csumStart, csumOffset, numBuffers] {
            b += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)]
        }
        return b
    }

    /// Why the driver may not send this header with `acked` features, or nil when it may.
    func txRefusal(acked: UInt64) -> String? {
        if flags & ~Self.flagNeedsCsum != 0 { return "TX header flags \(flags)" }
        if flags & Self.flagNeedsCsum != 0, acked & NetFeature.csum == 0 { return "NEEDS_CSUM without CSUM" }
        let ecn = gsoType & Self.gsoECN != 0
        if ecn, acked & NetFeature.hostECN == 0 { return "GSO ECN without HOST_ECN" }
        switch gsoType & ~Self.gsoECN {
        case Self.gsoNone:
            return ecn ? "ECN bit without GSO" : nil
        case Self.gsoTCPv4 where acked & NetFeature.hostTSO4 != 0,
            Self.gsoTCPv6 where acked & NetFeature.hostTSO6 != 0:
            return gsoSize == 0 ? "GSO with gso_size 0" : nil
        default:
            return "gso_type \(gsoType) not negotiated"
        }
    }
}

/// struct virtio_net_config (spec 5.1.4), the fields we serve: mac, status, max_virtqueue_pairs
/// and mtu, 12 bytes. The driver cannot change any of them (VERSION_1 makes mac read-only).
public struct VirtioNetConfig: Equatable, Sendable {
    /// VIRTIO_NET_S_LINK_UP.
    public static let linkUp: UInt16 = 1

    public var mac: [UInt8]
    public var status: UInt16 = VirtioNetConfig.linkUp
    public var maxVirtqueuePairs: UInt16 = 1
    public var mtu: UInt16

    public init(mac: [UInt8], mtu: UInt16) {
        precondition(mac.count == 6, "a MAC address has 6 bytes")
        self.mac = mac
        self.mtu = mtu
    }

    public var bytes: [UInt8] {
        var b = mac
        for v in [status, maxVirtqueuePairs, mtu] {
            b += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)]
        }
        return b
    }
}

/// A MAC address written as six hex bytes with colons ("02:00:00:00:00:01").
public enum MACAddress {
    /// The six bytes of `text`, or nil when it is not a MAC address.
    public static func parse(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        return bytes.count == 6 ? bytes : nil
    }

    /// A random locally administered unicast address.
    public static func random() -> [UInt8] {
        var bytes = (0..<6).map { _ in UInt8.random(in: 0...255) }
        bytes[0] = bytes[0] & 0xfe | 0x02
        return bytes
    }
}
