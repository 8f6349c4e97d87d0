// Netlink framing: messages (struct nlmsghdr + payload) and attributes (struct nlattr + value),
// both 4-byte aligned. Decoding checks every length against what is really there; encoding
// builds one request with nested attributes.

/// One message as received: header fields and the payload after the 16-byte header.
public struct NetlinkMessage: Sendable, Equatable {
    public var type: UInt16
    public var flags: MessageFlags
    public var sequence: UInt32
    public var portID: UInt32
    public var payload: [UInt8]

    public init(type: UInt16, flags: MessageFlags, sequence: UInt32, portID: UInt32, payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.sequence = sequence
        self.portID = portID
        self.payload = payload
    }

    /// Splits one datagram into its messages. A length field that is shorter than a header or
    /// runs past the datagram, or trailing bytes too short for a header, are `malformed`.
    public static func parse(_ datagram: [UInt8]) throws(NetlinkError) -> [NetlinkMessage] {
        let reader = ByteReader(datagram, "nlmsghdr")
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset < datagram.count {
            guard datagram.count - offset >= Wire.headerSize else {
                throw .malformed("\(datagram.count - offset) trailing bytes, shorter than a message header")
            }
            let length = Int(try reader.u32(at: offset))
            guard length >= Wire.headerSize, length <= datagram.count - offset else {
                throw .malformed("message length \(length) at offset \(offset) of a \(datagram.count)-byte datagram")
            }
            messages.append(
                NetlinkMessage(
                    type: try reader.u16(at: offset + 4),
                    flags: MessageFlags(rawValue: try reader.u16(at: offset + 6)),
                    sequence: try reader.u32(at: offset + 8),
                    portID: try reader.u32(at: offset + 12),
                    payload: try reader.slice(offset + Wire.headerSize, length - Wire.headerSize)))
            offset += min(Wire.align(length), datagram.count - offset)
        }
        return messages
    }

    /// The errno of an NLMSG_ERROR (0 for an ack) and the extended-ack text, if any.
    func errorPayload() throws(NetlinkError) -> (errno: Int32, message: String?) {
        let reader = ByteReader(payload, "nlmsgerr")
        let code = try reader.i32(at: 0)
        guard flags.contains(.ackTLVs) else { return (code, nil) }
        // After the error: the request's header, plus its payload unless the ack is capped.
        var offset = 4 + Wire.headerSize
        if !flags.contains(.capped) {
            let echoed = Int(try reader.u32(at: 4))
            guard echoed >= Wire.headerSize else { throw .malformed("nlmsgerr: echoed length \(echoed)") }
            offset = 4 + Wire.align(echoed)
        }
        guard offset <= payload.count else { return (code, nil) }
        let attributes = try NetlinkAttribute.parse(try reader.rest(from: offset), "nlmsgerr TLVs")
        return (code, try attributes.first(Wire.extendedAckMessage)?.string())
    }
}

/// One attribute: its type (without the nested and byte-order flags) and its value bytes.
public struct NetlinkAttribute: Sendable, Equatable {
    public var type: UInt16
    public var value: [UInt8]

    public init(type: UInt16, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    /// Parses a run of attributes. An attribute whose length is below its header or runs past
    /// the end, or trailing bytes too short for a header, are `malformed`.
    public static func parse(_ bytes: [UInt8], _ what: String) throws(NetlinkError) -> [NetlinkAttribute] {
        let reader = ByteReader(bytes, what)
        var attributes: [NetlinkAttribute] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= Wire.attributeHeaderSize else {
                throw .malformed("\(what): \(bytes.count - offset) trailing bytes, shorter than an attribute header")
            }
            let length = Int(try reader.u16(at: offset))
            let type = try reader.u16(at: offset + 2) & Wire.attributeTypeMask
            guard length >= Wire.attributeHeaderSize, length <= bytes.count - offset else {
                throw .malformed("\(what): attribute \(type) length \(length) at offset \(offset) of \(bytes.count)")
            }
            attributes.append(
                NetlinkAttribute(type: type, value: try reader.slice(offset + 4, length - Wire.attributeHeaderSize)))
            offset += min(Wire.align(length), bytes.count - offset)
        }
        return attributes
    }

    private var reader: ByteReader { ByteReader(value, "attribute \(type)") }

    /// A fixed-size integer value; a shorter value is `malformed`.
    public func u8() throws(NetlinkError) -> UInt8 { try reader.u8(at: 0) }
    public func u16() throws(NetlinkError) -> UInt16 { try reader.u16(at: 0) }
    public func u32() throws(NetlinkError) -> UInt32 { try reader.u32(at: 0) }
    public func i32() throws(NetlinkError) -> Int32 { try reader.i32(at: 0) }

    /// A C string: up to the first NUL (or the whole value), invalid UTF-8 repaired.
    public func string() -> String {
        let end = value.firstIndex(of: 0) ?? value.count
        return String(decoding: value[..<end], as: UTF8.self)
    }

    /// The attributes nested inside this one.
    public func nested() throws(NetlinkError) -> [NetlinkAttribute] {
        try NetlinkAttribute.parse(value, "attribute \(type)")
    }
}

extension Array where Element == NetlinkAttribute {
    /// The first attribute of `type` (the kernel sends each at most once where we look).
    public func first(_ type: UInt16) -> NetlinkAttribute? { first { $0.type == type } }
}

/// A request being built: the header (length and sequence filled in by `encoded`), the family
/// header, then attributes.
public struct NetlinkRequest: Sendable, Equatable {
    var writer = ByteWriter()
    public let type: UInt16
    public let flags: MessageFlags

    public init(type: UInt16, flags: MessageFlags) {
        self.type = type
        self.flags = flags
        writer.append(UInt32(0))  // length, set by encoded
        writer.append(type)
        writer.append(flags.rawValue)
        writer.append(UInt32(0))  // sequence, set by encoded
        writer.append(UInt32(0))  // port id: 0 means the kernel fills in ours
    }

    /// Appends a fixed-width field of the family header.
    mutating func append<T: FixedWidthInteger>(_ value: T) { writer.append(value) }

    /// Appends an attribute with `value`, padded to 4 bytes.
    mutating func attribute(_ type: UInt16, _ value: [UInt8]) {
        writer.append(UInt16(Wire.attributeHeaderSize + value.count))
        writer.append(type)
        writer.append(value)
        writer.pad()
    }

    mutating func attribute<T: FixedWidthInteger>(_ type: UInt16, integer: T) {
        var w = ByteWriter()
        w.append(integer)
        attribute(type, w.bytes)
    }

    /// A NUL-terminated string attribute.
    mutating func attribute(_ type: UInt16, string: String) {
        attribute(type, Array(string.utf8) + [0])
    }

    /// An attribute holding the attributes `body` appends.
    mutating func nested(_ type: UInt16, _ body: (inout NetlinkRequest) -> Void) {
        let start = writer.bytes.count
        writer.append(UInt16(0))
        writer.append(type)
        body(&self)
        writer.set(UInt16(writer.bytes.count - start), at: start)
    }

    /// The bytes to send, with the total length and `sequence` filled in.
    public func encoded(sequence: UInt32) -> [UInt8] {
        var w = writer
        w.set(UInt32(w.bytes.count), at: 0)
        w.set(sequence, at: 8)
        return w.bytes
    }
}
