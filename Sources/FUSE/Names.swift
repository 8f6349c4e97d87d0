// Validated names: the only way guest-supplied strings reach a system call.

import Glibc

/// One path component from the guest: 1...255 bytes, no '/', not "." or "..". Holds its bytes
/// with the trailing NUL so it can be handed to *at() calls as is. Constructing one is the check.
public struct FUSEName: Sendable, Equatable, CustomStringConvertible {
    /// The bytes including the terminating NUL.
    let cString: [CChar]

    /// Validates `cString`, which must end with its (only) NUL.
    init(validating cString: [CChar]) throws(FUSEErrno) {
        guard let last = cString.last, last == 0, cString.count >= 2 else { throw .invalid }
        let body = cString.dropLast()
        guard body.count <= Int(NAME_MAX) else { throw .nameTooLong }
        guard !body.contains(0), !body.contains(CChar(UInt8(ascii: "/"))) else { throw .invalid }
        let dot = CChar(UInt8(ascii: "."))
        if body.count <= 2 && body.allSatisfy({ $0 == dot }) { throw .invalid }
        self.cString = cString
    }

    /// A name from a host directory entry (getdents64 never returns '/' or NUL inside a name).
    public init(_ string: String) throws(FUSEErrno) {
        try self.init(validating: string.utf8CString.map { $0 })
    }

    var byteCount: Int { cString.count - 1 }
    var bytes: [UInt8] { cString.dropLast().map { UInt8(bitPattern: $0) } }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

/// A symlink target or xattr name from the guest: NUL-terminated, no interior NUL, bounded length.
struct FUSEText: Sendable, Equatable {
    let cString: [CChar]

    init(validating cString: [CChar], maxLength: Int) throws(FUSEErrno) {
        guard let last = cString.last, last == 0, cString.count >= 2 else { throw .invalid }
        guard cString.count - 1 <= maxLength else { throw .nameTooLong }
        guard !cString.dropLast().contains(0) else { throw .invalid }
        self.cString = cString
    }

    var string: String { String(decoding: cString.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) }
}
