/// A guest physical address.
///
/// Arithmetic that could wrap is checked: a guest-supplied address plus a guest-supplied
/// length must never silently wrap around to a small, valid-looking address.
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }

    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `self + offset`, or nil when the sum does not fit in 64 bits.
    public func checkedAdding(_ offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    /// `self + offset`; traps on overflow. For VMM-chosen constants only, never guest input.
    public func adding(_ offset: UInt64) -> GuestAddress { GuestAddress(rawValue + offset) }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}
