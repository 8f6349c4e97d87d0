// Strict little-endian reader over one request's private copy of its bytes.

/// Reads FUSE argument structures from a byte array. Every read is bounds-checked and fails with
/// EINVAL rather than reading past the end; `finish()` refuses trailing bytes.
struct WireReader {
    private let bytes: [UInt8]
    private(set) var position: Int

    init(_ bytes: [UInt8], from position: Int = 0) {
        self.bytes = bytes
        self.position = min(position, bytes.count)
    }

    var remaining: Int { bytes.count - position }

    mutating func u16() throws(FUSEErrno) -> UInt16 { UInt16(truncatingIfNeeded: try integer(2)) }
    mutating func u32() throws(FUSEErrno) -> UInt32 { UInt32(truncatingIfNeeded: try integer(4)) }
    mutating func u64() throws(FUSEErrno) -> UInt64 { try integer(8) }

    mutating func skip(_ count: Int) throws(FUSEErrno) {
        guard count >= 0, count <= remaining else { throw .invalid }
        position += count
    }

    /// The next `count` bytes.
    mutating func bytes(_ count: Int) throws(FUSEErrno) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw .invalid }
        defer { position += count }
        return bytes[position..<position + count]
    }

    /// A NUL-terminated string, returned with its NUL. EINVAL when no NUL comes before the end.
    mutating func cString() throws(FUSEErrno) -> [CChar] {
        guard let end = bytes[position...].firstIndex(of: 0) else { throw .invalid }
        defer { position = end + 1 }
        return bytes[position...end].map { CChar(bitPattern: $0) }
    }

    /// Refuses bytes left over after the last argument.
    func finish() throws(FUSEErrno) {
        guard remaining == 0 else { throw .invalid }
    }

    private mutating func integer(_ size: Int) throws(FUSEErrno) -> UInt64 {
        guard size <= remaining else { throw .invalid }
        var value: UInt64 = 0
        for index in 0..<size {
            value |= UInt64(bytes[position + index]) << (8 * UInt64(index))
        }
        position += size
        return value
    }
}

/// Appends little-endian integers: reply payloads are built with this before they are copied out.
struct WireWriter {
    var bytes: [UInt8]

    init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func u16(_ value: UInt16) { append(UInt64(value), size: 2) }
    mutating func u32(_ value: UInt32) { append(UInt64(value), size: 4) }
    mutating func i32(_ value: Int32) { append(UInt64(UInt32(bitPattern: value)), size: 4) }
    mutating func u64(_ value: UInt64) { append(value, size: 8) }
    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }
    mutating func append<S: Sequence>(contentsOf other: S) where S.Element == UInt8 {
        bytes.append(contentsOf: other)
    }

    /// Pads with zeros to the next multiple of 8 (FUSE_REC_ALIGN).
    mutating func alignTo8() { zeros((8 - bytes.count % 8) % 8) }

    private mutating func append(_ value: UInt64, size: Int) {
        for index in 0..<size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
    }
}
