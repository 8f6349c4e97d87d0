import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Which offloads the driver accepted on receive; a backend that honours a vnet header must
/// not hand the device packets beyond these (a tap gets them as TUNSETOFFLOAD).
public struct NetOffloads: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let csum = NetOffloads(rawValue: 1)
    public static let tso4 = NetOffloads(rawValue: 2)
    public static let tso6 = NetOffloads(rawValue: 4)
    public static let tsoECN = NetOffloads(rawValue: 8)

    /// The offloads that the driver's `acked` features allow, keeping the spec's dependencies
    /// (TSO needs GUEST_CSUM, ECN needs a TSO) so a careless driver cannot ask for a set the
    /// kernel refuses.
    public init(guestFeatures acked: UInt64) {
        self = []
        guard acked & NetFeature.guestCsum != 0 else { return }
        insert(.csum)
        if acked & NetFeature.guestTSO4 != 0 { insert(.tso4) }
        if acked & NetFeature.guestTSO6 != 0 { insert(.tso6) }
        if acked & NetFeature.guestECN != 0, !isDisjoint(with: [.tso4, .tso6]) { insert(.tsoECN) }
    }
}

/// The host side of a virtio-net device: one Ethernet frame per call, each preceded by a
/// 12-byte `VirtioNetHeader`, in both directions. The device calls it from its host's thread
/// only; `readinessDescriptor` tells that host when `receive` has something.
public protocol NetBackend: AnyObject, Sendable {
    /// Polls readable when a frame for the guest waits (for the host's epoll).
    var readinessDescriptor: FileDescriptor { get }
    /// Whether the backend honours the vnet header (offloads may be offered).
    var passesVnetHeader: Bool { get }
    /// Sends one frame from the guest, header first.
    func send(_ packet: [UInt8]) throws(Errno)
    /// The next frame for the guest, header first, at most `maxLength` bytes; nil when none
    /// is waiting.
    func receive(maxLength: Int) throws(Errno) -> [UInt8]?
    /// The receive offloads the guest accepted.
    func setOffloads(_ offloads: NetOffloads) throws(Errno)
}

/// A backend over one non-blocking descriptor that keeps frame boundaries: a tap opened with
/// IFF_VNET_HDR (`TapBackend`) or one end of a SOCK_SEQPACKET socket pair (tests, or a
/// user-space switch).
public class FrameDescriptorBackend: NetBackend, @unchecked Sendable {
    // SAFETY (Sendable): the descriptor is immutable and the kernel serialises the calls on it.
    public let descriptor: FileDescriptor

    /// Takes ownership of `descriptor`, which should be non-blocking.
    public init(descriptor: FileDescriptor) {
        self.descriptor = descriptor
    }

    public var readinessDescriptor: FileDescriptor { descriptor }
    public var passesVnetHeader: Bool { true }

    public func send(_ packet: [UInt8]) throws(Errno) {
        let n = try retryingSyscall {
            packet.withUnsafeBytes { raw in Glibc.write(descriptor.rawValue, raw.baseAddress, raw.count) }
        }
        // A frame is written whole or not at all; anything else would be a truncated frame.
        if n != packet.count { throw Errno(rawValue: EIO) }
    }

    public func receive(maxLength: Int) throws(Errno) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maxLength)
        do {
            let n = try retryingSyscall {
                buffer.withUnsafeMutableBytes { raw in Glibc.read(descriptor.rawValue, raw.baseAddress, raw.count) }
            }
            buffer.removeSubrange(n...)
            return buffer
        } catch .wouldBlock {
            return nil
        }
    }

    public func setOffloads(_ offloads: NetOffloads) throws(Errno) {}
}
