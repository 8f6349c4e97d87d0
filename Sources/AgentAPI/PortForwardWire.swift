// The port-forward stream between the shim and the agent (docs/kubernetes.md, "Port
// forwarding"): the shim connects to the agent's vsock port 1027 and sends a 4-byte header
// [version 1, address family 4 or 6, port high byte, port low byte]; the agent dials that port
// on the guest's loopback and answers one byte, 0 when connected, else the errno (at most 255);
// then bytes flow both ways, each side passing on its end of file.

public enum PortForwardWire {
    public static let vsockPort: UInt32 = 1027
    public static let version: UInt8 = 1
    public static let headerSize = 4

    public static func header(family: UInt8, port: UInt16) -> [UInt8] {
        [version, family, UInt8(port >> 8), UInt8(port & 0xFF)]
    }

    /// The family and port a header asks for; nil for a header this version does not speak
    /// (wrong size, version, family, or port 0).
    public static func parse(_ header: [UInt8]) -> (family: UInt8, port: UInt16)? {
        guard header.count == headerSize, header[0] == version, header[1] == 4 || header[1] == 6 else { return nil }
        let port = UInt16(header[2]) << 8 | UInt16(header[3])
        return port == 0 ? nil : (header[1], port)
    }

    /// The status byte for an errno (0 is success).
    public static func status(errno: Int32) -> UInt8 {
        UInt8(clamping: max(errno, 1))
    }
}
