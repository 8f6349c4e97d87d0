/// The host side of a vsock device (Firecracker's `VsockBackend`): the device moves packets
/// between the virtqueues and the backend; the backend owns connections and host endpoints.
///
/// Implementation: `VsockMuxer`, the in-process host API (also used by tests); the hybrid
/// Unix socket (`CONNECT <port>`, Hypervisor's HybridVsockServer) is built on it. The device
/// calls these methods under its own serialisation; backends are thread-safe because their
/// host side is used from other threads.
public protocol VsockBackend: AnyObject, Sendable {
    /// A packet the guest sent, from the TX queue. The device has checked its length and CIDs.
    func handleGuestPacket(_ packet: VsockPacket)
    /// Whether packets for the guest are waiting.
    var hasPendingPackets: Bool { get }
    /// The next packet for the guest, with at most `maxPayload` payload bytes; the device
    /// fills in the CIDs.
    func nextPacketForGuest(maxPayload: Int) -> VsockPacket?
    /// The guest driver reset the device: every connection is gone.
    func deviceReset()
    /// Connections open or closing.
    var connectionCount: Int { get }
    /// Asks the device's host to run the device's backend work soon (from any thread).
    func wakeDevice()
}

/// Errors of the in-process host API.
public enum VsockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// listen: another listener holds the port.
    case portInUse(UInt32)
    /// write: the connection is not established yet.
    case notConnected
    /// write: the host already shut down its sending side.
    case shutDown
    /// The connection is over.
    case closed(reason: VsockCloseReason)
    /// connect: no free host port left.
    case noFreePort

    public var description: String {
        switch self {
        case .portInUse(let p): "vsock listen: host port \(p) in use"
        case .notConnected: "vsock write: connection not established"
        case .shutDown: "vsock write: sending side shut down"
        case .closed(let r): "vsock: connection closed (\(r))"
        case .noFreePort: "vsock connect: no free host port"
        }
    }
}
