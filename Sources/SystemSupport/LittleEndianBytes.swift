// Little-endian integers into and out of byte arrays: the one writer and reader for our own
// saved formats (a VM snapshot's records, a virtio transport's state).

/// Appends integers, least significant byte first.
public struct LittleEndianWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    public mutating func append(contentsOf raw: some Sequence<UInt8>) { bytes += raw }
}

/// Takes integers and runs of bytes from the front; nil where fewer bytes are left than asked for
/// (the caller names what was cut short).
public struct LittleEndianReader: Sendable {
    private var rest: ArraySlice<UInt8>

    public init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

    public var remaining: Int { rest.count }

    public mutating func read<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard let bytes = take(MemoryLayout<T>.size) else { return nil }
        return bytes.reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    public mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, rest.count >= count else { return nil }
        defer { rest = rest.dropFirst(count) }
        return rest.prefix(count)
    }
}
