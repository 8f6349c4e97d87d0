// IP and link-layer addresses as the kernel carries them (network-order bytes), parsed from and
// printed as the usual text forms with inet_pton/inet_ntop.
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// From network-order bytes; nil unless there are 4 or 16 of them.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    private init(checked bytes: [UInt8]) { self.bytes = bytes }

    /// From "192.0.2.1" or "2001:db8::1"; nil for anything else (no prefix, no zone).
    public init?(_ text: String) {
        var buffer = [UInt8](repeating: 0, count: 16)
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard inet_pton(AF_INET6, text, &buffer) == 1 else { return nil }
            bytes = buffer
        } else {
            guard inet_pton(AF_INET, text, &buffer) == 1 else { return nil }
            bytes = Array(buffer[0..<4])
        }
    }

    public var family: AddressFamily { bytes.count == 4 ? .ipv4 : .ipv6 }

    /// The same family with other bytes of the same count (a network address).
    func masked(_ other: [UInt8]) -> IPAddress {
        precondition(other.count == bytes.count)
        return IPAddress(checked: other)
    }

    /// fe80::/10.
    public var isIPv6LinkLocal: Bool { family == .ipv6 && bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let af = family == .ipv4 ? AF_INET : AF_INET6
        guard inet_ntop(af, bytes, &text, socklen_t(text.count)) != nil else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An address with a prefix length: "10.88.0.5/16", "fd00::5/64".
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: UInt8

    /// nil when `length` exceeds the family's bit count.
    public init?(address: IPAddress, length: UInt8) {
        guard Int(length) <= address.bytes.count * 8 else { return nil }
        self.init(checked: address, length: length)
    }

    private init(checked address: IPAddress, length: UInt8) {
        self.address = address
        self.length = length
    }

    /// From "address/length", or a bare address (a host prefix: /32 or /128).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        if parts.count == 1 {
            self.init(address: address, length: UInt8(address.bytes.count * 8))
        } else {
            guard let length = UInt8(parts[1]) else { return nil }
            self.init(address: address, length: length)
        }
    }

    /// The network address: host bits cleared.
    public var network: IPPrefix {
        var bytes = address.bytes
        for i in bytes.indices {
            let bitsHere = max(0, min(8, Int(length) - i * 8))
            bytes[i] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return IPPrefix(checked: address.masked(bytes), length: length)
    }

    public var description: String { "\(address)/\(length)" }
}

/// A link-layer address: six bytes for Ethernet, none for a tun device, others for other media.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// From "aa:bb:cc:dd:ee:ff" (any case; 1-2 hex digits per byte); nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...2).contains(part.count), let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    public var description: String {
        bytes.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }
}
