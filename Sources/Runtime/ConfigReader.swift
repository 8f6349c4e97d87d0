// Typed access to a parsed configuration file: every read names the table and key, wrong types and
// impossible values become ConfigErrors with file, line and key, and keys nobody read become
// warnings (RuntimeConfig+Schema.swift lists the ones Kata defines that we do not implement).

/// Reads one document; remembers which keys were read and what to warn about.
final class ConfigReader {
    let document: TOMLDocument
    let file: String
    private(set) var warnings: [ConfigWarning] = []
    /// "table.key" of every key read (or deliberately passed over).
    private var read: Set<String> = []
    /// Keys Kata defines that kata-swift does not implement, per table: warned about unless inert.
    var unimplemented: [String: Set<String>] = [:]
    /// Tables whose keys are not warned about one by one (a whole table was already warned about).
    var silencedTables: Set<String> = []

    init(document: TOMLDocument, file: String) {
        self.document = document
        self.file = file
    }

    func entry(_ table: String, _ key: String) -> TOMLDocument.Entry? {
        guard let entry = document.tables[table]?[key] else { return nil }
        read.insert(Self.name(table, key))
        return entry
    }

    func has(table: String) -> Bool { document.tableLines[table] != nil || !(document.tables[table] ?? [:]).isEmpty }

    static func name(_ table: String, _ key: String) -> String { key.isEmpty ? "[\(table)]" : table.isEmpty ? key : "\(table).\(key)" }

    func warn(_ table: String, _ key: String, line: Int, _ message: String) {
        warnings.append(ConfigWarning(file: file, line: line, key: Self.name(table, key), message: message))
    }

    func wrongType(_ table: String, _ key: String, expected: String, _ entry: TOMLDocument.Entry) -> ConfigError {
        .wrongType(file: file, key: Self.name(table, key), line: entry.line, expected: expected, found: entry.value.typeName)
    }

    func invalid(_ table: String, _ key: String, _ reason: String) -> ConfigError {
        .invalidValue(file: file, key: Self.name(table, key), line: document.tables[table]?[key]?.line ?? 0, reason: reason)
    }

    func string(_ table: String, _ key: String) throws(ConfigError) -> String? {
        guard let entry = entry(table, key) else { return nil }
        guard case .string(let value) = entry.value else { throw wrongType(table, key, expected: "string", entry) }
        return value
    }

    func path(_ table: String, _ key: String) throws(ConfigError) -> String? {
        guard let value = try string(table, key) else { return nil }
        guard value.hasPrefix("/") else { throw invalid(table, key, "\"\(value)\" is not an absolute path") }
        return value
    }

    func integer(_ table: String, _ key: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let entry = entry(table, key) else { return nil }
        guard case .integer(let value) = entry.value else { throw wrongType(table, key, expected: "integer", entry) }
        guard value >= range.lowerBound, value <= range.upperBound else {
            throw invalid(table, key, "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(value)
    }

    func boolean(_ table: String, _ key: String) throws(ConfigError) -> Bool? {
        guard let entry = entry(table, key) else { return nil }
        guard case .boolean(let value) = entry.value else { throw wrongType(table, key, expected: "boolean", entry) }
        return value
    }

    func strings(_ table: String, _ key: String) throws(ConfigError) -> [String]? {
        guard let entry = entry(table, key) else { return nil }
        guard case .array(let items) = entry.value else { throw wrongType(table, key, expected: "array of strings", entry) }
        var out: [String] = []
        for item in items {
            guard case .string(let value) = item else { throw wrongType(table, key, expected: "array of strings", entry) }
            out.append(value)
        }
        return out
    }

    func oneOf(_ table: String, _ key: String, _ allowed: [String]) throws(ConfigError) -> String? {
        guard let value = try string(table, key) else { return nil }
        guard allowed.contains(value) else {
            throw invalid(table, key, "\"\(value)\" is not one of \(allowed.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        return value
    }

    /// Every key nobody read: "not implemented" for the keys Kata defines (unless their value asks
    /// for nothing: false, 0, "" or []), "unknown" for the rest.
    func warnAboutUnreadKeys() {
        let unread = document.tables.flatMap { table, entries in entries.map { (table, $0.key, $0.value) } }
            .filter { !read.contains(Self.name($0.0, $0.1)) && !silencedTables.contains($0.0) }
            .sorted { $0.2.line < $1.2.line }
        for (table, key, entry) in unread {
            if unimplemented[table]?.contains(key) == true {
                guard !Self.isInert(entry.value) else { continue }
                warn(table, key, line: entry.line, "not implemented by kata-swift; ignored")
            } else {
                warn(table, key, line: entry.line, "unknown key; ignored")
            }
        }
    }

    static func isInert(_ value: TOMLValue) -> Bool {
        switch value {
        case .boolean(let flag): !flag
        case .integer(let n): n == 0
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        }
    }
}
