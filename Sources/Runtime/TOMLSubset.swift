// A small, strict parser for the part of TOML that configuration files (ours and Kata's) use:
// `[table]` and `[dotted.table]` headers, `key = value` lines, values that are basic strings
// ("..." with \" \\ \n \t escapes), literal strings ('...'), integers, booleans and arrays of those
// (which may span lines and hold comments); `#` comments. Anything else (inline tables, dotted or
// quoted keys, arrays of tables, multi-line strings, floats, dates) is an error that names the
// line, so a configuration never means something other than what it says. Why not TOMLKit:
// docs/configuration.md, "The parser".

/// A TOML value of the supported subset.
public enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case boolean(Bool)
    case array([TOMLValue])

    /// The TOML type name, for error messages.
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .boolean: "boolean"
        case .array: "array"
        }
    }
}

/// A parsed document: table name (dotted, "" for keys before any header) → key → value, with the
/// line of each key for error messages.
public struct TOMLDocument: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var value: TOMLValue
        public var line: Int
    }

    public var tables: [String: [String: Entry]] = [:]
    /// The line of each table header.
    public var tableLines: [String: Int] = [:]
}

/// A syntax error at `line` (1-based).
public struct TOMLSyntaxError: Error, Equatable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "line \(line): \(reason)" }
}

/// The parser.
public enum TOMLSubset {
    /// Arrays nest no deeper than this (only one level is meaningful; the bound keeps recursion small).
    static let maxArrayDepth = 1

    public static func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLDocument {
        var document = TOMLDocument()
        document.tables[""] = [:]
        var table = ""
        var scanner = Scanner(Array(text.utf8))
        while true {
            scanner.skipBlankLinesAndComments()
            guard let byte = scanner.peek else { break }
            let number = scanner.line
            if byte == UInt8(ascii: "[") {
                scanner.advance()
                if scanner.peek == UInt8(ascii: "[") { throw scanner.error("arrays of tables ([[...]]) are not supported") }
                var parts: [String] = []
                repeat {
                    if !parts.isEmpty { scanner.advance() }  // the dot
                    scanner.skipSpaces()
                    parts.append(try scanner.bareKey())
                    scanner.skipSpaces()
                } while scanner.peek == UInt8(ascii: ".")
                let name = parts.joined(separator: ".")
                guard scanner.peek == UInt8(ascii: "]") else {
                    throw scanner.error("expected ']' after table name \(name) (quoted table names are not supported)")
                }
                scanner.advance()
                try scanner.expectEndOfLine()
                guard document.tableLines[name] == nil else { throw TOMLSyntaxError(line: number, reason: "table [\(name)] defined twice") }
                document.tableLines[name] = number
                document.tables[name] = document.tables[name] ?? [:]
                table = name
                continue
            }
            let key = try scanner.bareKey()
            scanner.skipSpaces()
            guard scanner.peek == UInt8(ascii: "=") else {
                throw scanner.error("expected '=' after key \(key) (dotted or quoted keys are not supported)")
            }
            scanner.advance()
            scanner.skipSpaces()
            let value = try scanner.value(depth: 0)
            try scanner.expectEndOfLine()
            let path = table.isEmpty ? key : table + "." + key
            guard document.tables[table]?[key] == nil else {
                throw TOMLSyntaxError(line: number, reason: "key \(path) defined twice")
            }
            document.tables[table, default: [:]][key] = TOMLDocument.Entry(value: value, line: number)
        }
        // A key and a table of the same name (`qemu = 1` in [hypervisor] and [hypervisor.qemu]).
        for (name, line) in document.tableLines {
            let parent = name.split(separator: ".").dropLast().joined(separator: ".")
            let last = String(name.split(separator: ".").last ?? "")
            if let entry = document.tables[parent]?[last] {
                throw TOMLSyntaxError(line: max(line, entry.line), reason: "\(name) is both a key and a table")
            }
        }
        return document
    }

    /// A cursor over the whole text that counts lines.
    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        /// The 1-based line of `index`.
        var line = 1

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func advance() {
            if peek == UInt8(ascii: "\n") { line += 1 }
            index += 1
        }

        func error(_ reason: String) -> TOMLSyntaxError { TOMLSyntaxError(line: line, reason: reason) }

        mutating func skipSpaces() {
            while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { advance() }
        }

        mutating func skipComment() {
            guard peek == UInt8(ascii: "#") else { return }
            while let byte = peek, byte != UInt8(ascii: "\n") { advance() }
        }

        /// Spaces, line ends (LF or CRLF) and comments.
        mutating func skipBlankLinesAndComments() {
            while true {
                skipSpaces()
                skipComment()
                if peek == UInt8(ascii: "\r"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { advance() }
                guard peek == UInt8(ascii: "\n") else { return }
                advance()
            }
        }

        /// After a header or a value: spaces, an optional comment, then the end of the line or text.
        mutating func expectEndOfLine() throws(TOMLSyntaxError) {
            skipSpaces()
            skipComment()
            if peek == UInt8(ascii: "\r") { advance() }
            guard let byte = peek else { return }
            guard byte == UInt8(ascii: "\n") else { throw error("unexpected text after the value: \(restOfLine)") }
            advance()
        }

        var restOfLine: String {
            var end = index
            while end < bytes.count, bytes[end] != UInt8(ascii: "\n") { end += 1 }
            return String(decoding: bytes[min(index, bytes.count)..<end], as: UTF8.self)
        }

        static func isBareKeyByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }

        mutating func bareKey() throws(TOMLSyntaxError) -> String {
            let start = index
            while let byte = peek, Self.isBareKeyByte(byte) { advance() }
            guard index > start else { throw error("expected a key, found: \(restOfLine)") }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func value(depth: Int) throws(TOMLSyntaxError) -> TOMLValue {
            guard let byte = peek, byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "#") else { throw error("missing value") }
            switch byte {
            case UInt8(ascii: "\""): return .string(try basicString())
            case UInt8(ascii: "'"): return .string(try literalString())
            case UInt8(ascii: "["):
                guard depth < TOMLSubset.maxArrayDepth else { throw error("nested arrays are not supported") }
                return try array(depth: depth + 1)
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                let start = index
                while let b = peek, Self.isBareKeyByte(b) { advance() }
                switch String(decoding: bytes[start..<index], as: UTF8.self) {
                case "true": return .boolean(true)
                case "false": return .boolean(false)
                case let other: throw error("not a value: \(other) (strings need quotes)")
                }
            default:
                let start = index
                while let b = peek, Self.isBareKeyByte(b) || b == UInt8(ascii: "+") || b == UInt8(ascii: ".") { advance() }
                let word = String(decoding: bytes[start..<index], as: UTF8.self)
                guard !word.isEmpty else { throw error("not a value: \(restOfLine)") }
                let digits = word.replacingUnderscores()
                if let integer = Int64(digits) { return .integer(integer) }
                throw error("not a supported value: \(word) (integers, booleans, quoted strings and arrays only)")
            }
        }

        mutating func basicString() throws(TOMLSyntaxError) -> String {
            advance()  // opening quote
            if peek == UInt8(ascii: "\""), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") {
                throw error("multi-line strings are not supported")
            }
            var out: [UInt8] = []
            while let byte = peek {
                if byte == UInt8(ascii: "\n") { break }
                advance()
                switch byte {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek, escaped != UInt8(ascii: "\n") else { throw error("unterminated escape in string") }
                    advance()
                    switch escaped {
                    case UInt8(ascii: "\""): out.append(escaped)
                    case UInt8(ascii: "\\"): out.append(escaped)
                    case UInt8(ascii: "n"): out.append(0x0a)
                    case UInt8(ascii: "t"): out.append(0x09)
                    default: throw error("unsupported escape \\\(Character(UnicodeScalar(escaped))) in string")
                    }
                case 0x00..<0x20 where byte != 0x09: throw error("control character in string")
                default: out.append(byte)
                }
            }
            throw error("unterminated string")
        }

        mutating func literalString() throws(TOMLSyntaxError) -> String {
            advance()
            let start = index
            while let byte = peek, byte != UInt8(ascii: "'"), byte != UInt8(ascii: "\n") { advance() }
            guard peek == UInt8(ascii: "'") else { throw error("unterminated string") }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            advance()
            return text
        }

        /// `[a, b, ...]`, over as many lines as it takes, with comments between the items.
        mutating func array(depth: Int) throws(TOMLSyntaxError) -> TOMLValue {
            let opening = line
            advance()  // [
            var items: [TOMLValue] = []
            while true {
                skipBlankLinesAndComments()
                guard let byte = peek else {
                    throw TOMLSyntaxError(line: opening, reason: "unterminated array (no ']' before the end of the file)")
                }
                if byte == UInt8(ascii: "]") {
                    advance()
                    return .array(items)
                }
                let item = try value(depth: depth)
                if let first = items.first, first.typeName != item.typeName {
                    throw error("array mixes \(first.typeName) and \(item.typeName)")
                }
                items.append(item)
                skipBlankLinesAndComments()
                if peek == UInt8(ascii: ",") {
                    advance()
                } else if peek != UInt8(ascii: "]") {
                    throw error("expected ',' or ']' in array, found: \(restOfLine)")
                }
            }
        }
    }
}

extension String {
    /// TOML allows `1_000`; only between digits, which Int64() then checks.
    fileprivate func replacingUnderscores() -> String {
        var out = ""
        var previousWasDigit = false
        for character in self {
            if character == "_" {
                if !previousWasDigit { return self }
                previousWasDigit = false
                continue
            }
            previousWasDigit = character.isNumber
            out.append(character)
        }
        return previousWasDigit || out.isEmpty ? out : self
    }
}
