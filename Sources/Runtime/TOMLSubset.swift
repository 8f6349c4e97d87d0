// A small, strict parser for the subset of TOML our configuration file uses: `[table]` headers
// (one level, no dots), `key = value` lines, values that are basic strings ("..." with \" \\ \n \t
// escapes), literal strings ('...'), integers, booleans and one-line arrays of those; `#` comments.
// Anything else (inline tables, dotted keys, multi-line strings, floats, dates) is an error that
// names the line, so a configuration never means something other than what it says.

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

/// A parsed document: table name ("" for keys before any header) → key → value, with the line of
/// each key for error messages.
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
    public static func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLDocument {
        var document = TOMLDocument()
        document.tables[""] = [:]
        var table = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var scanner = Scanner(Array(rawLine.utf8), line: number)
            scanner.skipSpaces()
            if scanner.atEndOfContent { continue }
            if scanner.peek == UInt8(ascii: "[") {
                scanner.advance()
                if scanner.peek == UInt8(ascii: "[") { throw scanner.error("arrays of tables ([[...]]) are not supported") }
                scanner.skipSpaces()
                let name = try scanner.bareKey()
                scanner.skipSpaces()
                guard scanner.peek == UInt8(ascii: "]") else {
                    throw scanner.error("expected ']' after table name \(name) (dotted or quoted table names are not supported)")
                }
                scanner.advance()
                try scanner.expectEnd()
                guard document.tableLines[name] == nil else { throw scanner.error("table [\(name)] defined twice") }
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
            let value = try scanner.value()
            try scanner.expectEnd()
            guard document.tables[table]?[key] == nil else {
                throw scanner.error("key \(table.isEmpty ? key : table + "." + key) defined twice")
            }
            document.tables[table, default: [:]][key] = TOMLDocument.Entry(value: value, line: number)
        }
        return document
    }

    /// A cursor over one line.
    private struct Scanner {
        let bytes: [UInt8]
        let line: Int
        var index = 0

        init(_ bytes: [UInt8], line: Int) {
            self.bytes = bytes.last == UInt8(ascii: "\r") ? Array(bytes.dropLast()) : bytes
            self.line = line
        }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
        /// Nothing left but a comment.
        var atEndOfContent: Bool { peek == nil || peek == UInt8(ascii: "#") }
        mutating func advance() { index += 1 }

        func error(_ reason: String) -> TOMLSyntaxError { TOMLSyntaxError(line: line, reason: reason) }

        mutating func skipSpaces() {
            while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { advance() }
        }

        mutating func expectEnd() throws(TOMLSyntaxError) {
            skipSpaces()
            guard atEndOfContent else { throw error("unexpected text after the value: \(rest)") }
        }

        var rest: String { String(decoding: bytes[min(index, bytes.count)...], as: UTF8.self) }

        static func isBareKeyByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }

        mutating func bareKey() throws(TOMLSyntaxError) -> String {
            let start = index
            while let byte = peek, Self.isBareKeyByte(byte) { advance() }
            guard index > start else { throw error("expected a key, found: \(rest)") }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func value() throws(TOMLSyntaxError) -> TOMLValue {
            guard let byte = peek else { throw error("missing value") }
            switch byte {
            case UInt8(ascii: "\""): return .string(try basicString())
            case UInt8(ascii: "'"): return .string(try literalString())
            case UInt8(ascii: "["): return try array()
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
                guard !word.isEmpty else { throw error("not a value: \(rest)") }
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
                advance()
                switch byte {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let escaped = peek else { throw error("unterminated escape in string") }
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
            while let byte = peek, byte != UInt8(ascii: "'") { advance() }
            guard peek != nil else { throw error("unterminated string") }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            advance()
            return text
        }

        mutating func array() throws(TOMLSyntaxError) -> TOMLValue {
            advance()  // [
            var items: [TOMLValue] = []
            while true {
                skipSpaces()
                guard let byte = peek else { throw error("unterminated array (arrays must fit on one line)") }
                if byte == UInt8(ascii: "]") {
                    advance()
                    return .array(items)
                }
                let item = try value()
                if case .array = item { throw error("nested arrays are not supported") }
                if let first = items.first, first.typeName != item.typeName {
                    throw error("array mixes \(first.typeName) and \(item.typeName)")
                }
                items.append(item)
                skipSpaces()
                if peek == UInt8(ascii: ",") {
                    advance()
                } else if peek != UInt8(ascii: "]") {
                    throw error("expected ',' or ']' in array, found: \(rest)")
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
