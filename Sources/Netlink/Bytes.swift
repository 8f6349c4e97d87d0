// Bounds-checked reads of the kernel's bytes and the writes of our requests. Netlink uses the
// host's byte order, except where an attribute says network order (addresses, tc protocols).

/// Native-endian loads from a zero-based byte array; any read past the end is `malformed`.
struct ByteReader {
    let bytes: [UInt8]
    /// Names the structure being read, for error messages.
    let what: String

    init(_ bytes: [UInt8], _ what: String) {
        self.bytes = bytes
        self.what = what
    }

    var count: Int { bytes.count }

    func require(_ offset: Int, _ length: Int) throws(NetlinkError) {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else {
            throw .malformed("\(what): \(length) bytes at offset \(offset) exceed \(bytes.count)")
        }
    }

    func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) throws(NetlinkError) -> T {
        try require(offset, MemoryLayout<T>.size)
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }

    func u8(at offset: Int) throws(NetlinkError) -> UInt8 { try load(UInt8.self, at: offset) }
    func u16(at offset: Int) throws(NetlinkError) -> UInt16 { try load(UInt16.self, at: offset) }
    func u32(at offset: Int) throws(NetlinkError) -> UInt32 { try load(UInt32.self, at: offset) }
    func i32(at offset: Int) throws(NetlinkError) -> Int32 { try load(Int32.self, at: offset) }

    func slice(_ offset: Int, _ length: Int) throws(NetlinkError) -> [UInt8] {
        try require(offset, length)
        return Array(bytes[offset..<(offset + length)])
    }

    func rest(from offset: Int) throws(NetlinkError) -> [UInt8] {
        try require(offset, 0)
        return Array(bytes[offset...])
    }
}

/// Native-endian appends.
struct ByteWriter: Sendable, Equatable {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    mutating func pad(to alignment: Int = 4) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    /// Overwrites a value written earlier (a length known only at the end).
    mutating func set<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value) { raw in
            for (i, byte) in raw.enumerated() { bytes[offset + i] = byte }
        }
    }
}
