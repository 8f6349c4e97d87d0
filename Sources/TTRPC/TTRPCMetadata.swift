// Call metadata: ordered key/value pairs, keys lowercased (as ttrpc's Go MD does).

/// Metadata sent with a call, e.g. containerd's `containerd-namespace-ttrpc: default`.
/// A key may carry several values; keys are stored lowercased.
public struct TTRPCMetadata: Hashable, Sendable, ExpressibleByDictionaryLiteral {
    /// Entries in the order they were added (and sent).
    public private(set) var entries: [(key: String, value: String)]

    public init() {
        entries = []
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        entries = elements.map { (key: $0.0.lowercased(), value: $0.1) }
    }

    /// Every value of `key` (any case), in order.
    public subscript(key: String) -> [String] {
        let wanted = key.lowercased()
        return entries.filter { $0.key == wanted }.map(\.value)
    }

    /// The first value of `key`, if any.
    public func first(_ key: String) -> String? {
        self[key].first
    }

    /// Adds a value to `key`, keeping the values already there.
    public mutating func add(_ key: String, _ value: String) {
        entries.append((key: key.lowercased(), value: value))
    }

    /// Replaces every value of `key` with `value`.
    public mutating func set(_ key: String, _ value: String) {
        let wanted = key.lowercased()
        entries.removeAll { $0.key == wanted }
        entries.append((key: wanted, value: value))
    }

    public var isEmpty: Bool {
        entries.isEmpty
    }

    public static func == (lhs: TTRPCMetadata, rhs: TTRPCMetadata) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}

extension TTRPCMetadata {
    /// containerd's namespace key, sent with every call it makes.
    public static let containerdNamespaceKey = "containerd-namespace-ttrpc"

    init(wire: [Ttrpc_KeyValue]) {
        entries = wire.map { (key: $0.key.lowercased(), value: $0.value) }
    }

    var wire: [Ttrpc_KeyValue] {
        entries.map { entry in
            var keyValue = Ttrpc_KeyValue()
            keyValue.key = entry.key
            keyValue.value = entry.value
            return keyValue
        }
    }
}
