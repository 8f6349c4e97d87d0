// The transport under RouteNetlink: a real NETLINK_ROUTE socket, or a test double that answers
// from recorded bytes.
import CNet
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Sends whole requests and receives whole datagrams.
public protocol NetlinkTransport: AnyObject, Sendable {
    /// The port id the kernel addresses replies to (0 for doubles that do not care).
    var portID: UInt32 { get }
    func send(_ bytes: [UInt8]) throws(NetlinkError)
    /// One datagram, possibly holding several messages.
    func receive() throws(NetlinkError) -> [UInt8]
}

/// An AF_NETLINK socket. It lives in the network namespace of the thread that created it,
/// whatever thread uses it later (see NetworkNamespace).
public final class NetlinkSocket: NetlinkTransport {
    public let fd: FileDescriptor
    public let portID: UInt32

    /// NETLINK_ROUTE.
    public static let routeProtocol: Int32 = 0
    /// Large enough for any datagram the kernel builds for a dump (it sizes them to at most 32 KiB).
    static let receiveSize = 64 * 1024

    public init(protocol netlinkProtocol: Int32 = NetlinkSocket.routeProtocol) throws(NetlinkError) {
        var port: UInt32 = 0
        let raw = ks_netlink_open(netlinkProtocol, &port)
        guard raw >= 0 else { throw .system(operation: "socket(AF_NETLINK)", errno: Errno(rawValue: -raw)) }
        fd = FileDescriptor(owning: raw)
        portID = port
    }

    public func send(_ bytes: [UInt8]) throws(NetlinkError) {
        let sent: Int
        do {
            sent = try retryingSyscall { bytes.withUnsafeBytes { Glibc.send(fd.rawValue, $0.baseAddress, $0.count, 0) } }
        } catch {
            throw .system(operation: "send(netlink)", errno: error)
        }
        guard sent == bytes.count else {
            throw .system(operation: "send(netlink): \(sent) of \(bytes.count) bytes", errno: .tooBig)
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: Self.receiveSize)
        let received: Int
        do {
            // MSG_TRUNC makes recv report the datagram's real length, so a cut one is an error.
            received = try retryingSyscall {
                buffer.withUnsafeMutableBytes { Glibc.recv(fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_TRUNC)) }
            }
        } catch {
            throw .system(operation: "recv(netlink)", errno: error)
        }
        guard received <= buffer.count else {
            throw .malformed("a \(received)-byte datagram did not fit the \(buffer.count)-byte buffer")
        }
        buffer.removeSubrange(received...)
        return buffer
    }
}
