/// Errors of the kernel command line builder.
public enum CmdlineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The line plus its NUL would exceed the capacity.
    case tooLarge(length: Int, capacity: Int)
    /// A NUL byte or a non-printable character (the kernel reads a C string of printable ASCII).
    case invalidCharacter(UInt8)
    /// A key or value contains a space (it would split into two parameters).
    case hasSpace(String)
    /// A key contains '='.
    case hasEquals(String)
    case emptyKey

    public var description: String {
        switch self {
        case .tooLarge(let n, let c): "\(n) bytes plus NUL exceed the limit of \(c)"
        case .invalidCharacter(let b): "invalid character 0x\(String(b, radix: 16)) (only printable ASCII is allowed)"
        case .hasSpace(let s): "'\(s)' contains a space"
        case .hasEquals(let s): "key '\(s)' contains '='"
        case .emptyKey: "empty parameter name"
        }
    }
}

/// A validating kernel command line: printable ASCII, space-separated, bounded by `capacity`
/// (which counts the terminating NUL, as the kernel's COMMAND_LINE_SIZE does).
public struct Cmdline: Equatable, Sendable, CustomStringConvertible {
    public private(set) var text: String = ""
    public let capacity: Int

    public init(capacity: Int = Layout.cmdlineMaxSize) { self.capacity = capacity }

    /// A command line parsed from user text; every character is validated.
    public init(_ initial: String, capacity: Int = Layout.cmdlineMaxSize) throws(CmdlineError) {
        self.capacity = capacity
        let trimmed = initial.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        if !trimmed.isEmpty { try append(raw: trimmed) }
    }

    /// Adds `key=value` (or just `key` when value is nil).
    public mutating func insert(_ key: String, _ value: String? = nil) throws(CmdlineError) {
        guard !key.isEmpty else { throw .emptyKey }
        guard !key.contains(" ") else { throw .hasSpace(key) }
        guard !key.contains("=") else { throw .hasEquals(key) }
        if let value { guard !value.contains(" ") else { throw .hasSpace(value) } }
        try append(raw: value.map { "\(key)=\($0)" } ?? key)
    }

    /// Adds free text (possibly several parameters), validated.
    public mutating func insertString(_ string: String) throws(CmdlineError) {
        let trimmed = string.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        guard !trimmed.isEmpty else { return }
        try append(raw: trimmed)
    }

    /// Whether a parameter named `key` (as `key` or `key=...`) is present.
    public func contains(_ key: String) -> Bool {
        text.split(separator: " ").contains { $0 == key || $0.hasPrefix(key + "=") }
    }

    private mutating func append(raw: String) throws(CmdlineError) {
        for byte in raw.utf8 where byte < 0x20 || byte > 0x7e { throw .invalidCharacter(byte) }
        let newLength = text.utf8.count + (text.isEmpty ? 0 : 1) + raw.utf8.count
        guard newLength + 1 <= capacity else { throw .tooLarge(length: newLength, capacity: capacity) }
        text += (text.isEmpty ? "" : " ") + raw
    }

    /// The bytes to place in guest memory, NUL-terminated.
    public var bytes: [UInt8] { Array(text.utf8) + [0] }

    public var description: String { text }
}
