// Sandbox, container and exec IDs name host paths (the sandbox directory, the share's
// containers/<cid>), so they are checked where they arrive, with containerd's own rule
// (pkg/identifiers): `^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`, at most 76 characters. No `/`,
// no `..`, nothing empty.

public enum Identifier {
    public static let maxLength = 76

    /// Whether `id` is alphanumeric runs joined by single `.`, `_` or `-`, within `maxLength`.
    public static func isValid(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        var afterSeparator = true  // a leading separator is as bad as two in a row
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                afterSeparator = false
            case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                guard !afterSeparator else { return false }
                afterSeparator = true
            default:
                return false
            }
        }
        return !afterSeparator
    }

    /// Why `id` is refused, for error messages.
    public static func problem(_ what: String, _ id: String) -> String {
        "\(what) \"\(id.prefix(100))\" is not a valid identifier (letters and digits joined by single . _ or -, 1...\(maxLength) characters)"
    }
}
