// A small, strict TOML 1.0 parser for the daemon's configuration file.
//
// Supported: comments, `[table]` and `[dotted.table]` headers, `[[arrays.of.tables]]`,
// bare, quoted and dotted keys, basic and literal strings (single- and multi-line),
// integers (decimal, 0x, 0o, 0b, underscores), floats (exponent, inf, nan), booleans,
// arrays (multi-line, trailing comma, comments) and inline tables.
// Not supported: dates and times (rejected with a clear error; the configuration
// has no use for them).
//
// The parser works on the UTF-8 bytes of the text, never traps on any input, and
// bounds nesting so a hostile file cannot exhaust the stack.

/// A value in a TOML document.
public enum TOMLValue: Sendable, Equatable {
    /// A basic or literal string.
    case string(String)
    /// A 64-bit signed integer.
    case integer(Int64)
    /// A 64-bit float (may be infinite or NaN when written as `inf` / `nan`).
    case float(Double)
    /// `true` or `false`.
    case boolean(Bool)
    /// An array; TOML 1.0 allows mixed element types.
    case array([TOMLValue])
    /// A table (from a header, dotted keys or an inline table).
    case table([String: TOMLValue])

    /// The type named with an article, for error messages ("an integer").
    var typeDescription: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .boolean: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// A parse error, located in the source text.
public struct TOMLError: Error, CustomStringConvertible, Sendable, Equatable {
    /// 1-based line of the problem; 0 when no location is known.
    public var line: Int
    /// 1-based column (in Unicode scalars) of the problem; 0 when unknown.
    public var column: Int
    /// What is wrong, without the location.
    public var message: String

    /// Creates an error at a location.
    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// `"line 7, column 5: expected '=' after key 'port'"`.
    public var description: String {
        guard line > 0 else { return message }
        return "line \(line), column \(column): \(message)"
    }
}

/// Entry points for parsing a whole document.
public enum TOMLDocument {
    /// Parses a TOML document into its root table's values. Errors carry the
    /// line and column of the problem.
    public static func parse(_ text: String) throws(TOMLError) -> [String: TOMLValue] {
        var parser = TOMLParser(text)
        return try parser.parseDocument()
    }
}

// MARK: - Paths and locations

/// One step of a path in the document: a key, or an index into an array of tables.
enum TOMLPathComponent: Hashable, Sendable {
    case key(String)
    case index(Int)
}

/// A 1-based line and column.
struct TOMLLocation: Hashable, Sendable {
    var line: Int
    var column: Int
}

enum TOMLPath {
    /// `server.listeners[1]."odd key"`.
    static func display(_ path: [TOMLPathComponent]) -> String {
        var out = ""
        for component in path {
            switch component {
            case .index(let i):
                out += "[\(i)]"
            case .key(let k):
                if !out.isEmpty { out += "." }
                out += isBare(k) ? k : quoted(k)
            }
        }
        return out
    }

    static func display(keys: [String]) -> String {
        display(keys.map { .key($0) })
    }

    static func isBare(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.allSatisfy(TOMLParser.isBareKeyByte)
    }

    static func quoted(_ key: String) -> String {
        var out = "\""
        for scalar in key.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u" + hex4(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The allowed key within edit distance 2 of `key`, if exactly one is closest.
    static func closest(to key: String, in allowed: Set<String>) -> String? {
        let a = Array(key.unicodeScalars)
        guard a.count <= 64 else { return nil }
        var best: (distance: Int, key: String)?
        for candidate in allowed.sorted() {
            let b = Array(candidate.unicodeScalars)
            guard b.count <= 64, abs(a.count - b.count) <= 2 else { continue }
            let d = editDistance(a, b)
            if d <= 2, d < (best?.distance ?? .max) { best = (d, candidate) }
        }
        return best?.key
    }

    /// Levenshtein distance, two rows.
    private static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for (i, ca) in a.enumerated() {
            current[0] = i + 1
            for (j, cb) in b.enumerated() {
                let cost = ca == cb ? 0 : 1
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

// MARK: - Parser

/// A table under construction. A class so headers and dotted keys can reach deep
/// into the tree without copying; it never leaves the parser.
private final class TOMLNode {
    enum Kind {
        /// The document root.
        case root
        /// Created as the parent of a header (`a` for `[a.b]`); may be defined later once.
        case implicit
        /// Defined by its own `[header]` or `[[header]]`.
        case explicit
        /// Created by a dotted key (`a.b = 1` creates `a`); closed to headers.
        case dotted
    }

    enum Entry {
        case value(TOMLValue)
        case table(TOMLNode)
        case tableArray(TOMLNodeArray)
    }

    var kind: Kind
    var entries: [String: Entry] = [:]

    init(kind: Kind) { self.kind = kind }

    func toValues() -> [String: TOMLValue] {
        var out: [String: TOMLValue] = [:]
        out.reserveCapacity(entries.count)
        for (key, entry) in entries {
            switch entry {
            case .value(let v): out[key] = v
            case .table(let node): out[key] = .table(node.toValues())
            case .tableArray(let array): out[key] = .array(array.items.map { .table($0.toValues()) })
            }
        }
        return out
    }
}

private final class TOMLNodeArray {
    var items: [TOMLNode]
    init(_ items: [TOMLNode]) { self.items = items }
}

/// One part of a key as written, with where it starts.
private struct KeyPart {
    var name: String
    var offset: Int
    var location: TOMLLocation
}

struct TOMLParser {
    /// Deeper structures are refused rather than risking the stack.
    static let maxDepth = 100

    private let bytes: [UInt8]
    private var pos = 0
    private let lineStarts: [Int]
    private var locations: [[TOMLPathComponent]: TOMLLocation] = [:]
    /// The last location computed by `locate`, so locating keys in source order
    /// stays linear even on very long lines.
    private var cache: (offset: Int, line: Int, column: Int) = (0, 1, 1)

    init(_ text: String) {
        var bytes = Array(text.utf8)
        // A byte-order mark is not part of the document.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        self.bytes = bytes
        var starts = [0]
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") { starts.append(i + 1) }
        self.lineStarts = starts
    }

    // MARK: Document

    mutating func parseDocument() throws(TOMLError) -> [String: TOMLValue] {
        let root = TOMLNode(kind: .root)
        var current = root
        var currentPath: [TOMLPathComponent] = []

        while true {
            skipWhitespace()
            guard let byte = peek() else { break }
            switch byte {
            case UInt8(ascii: "#"):
                try skipComment()
                try expectLineEnd(after: "comment")
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                try expectLineEnd(after: "line")
            case UInt8(ascii: "["):
                (current, currentPath) = try parseHeader(root: root)
                try expectLineEnd(after: "table header")
            default:
                try parseKeyValue(into: current, tablePath: currentPath, depth: currentPath.count)
                try expectLineEnd(after: "value")
            }
        }
        return root.toValues()
    }

    /// After an expression: optional whitespace and comment, then a newline or the end.
    private mutating func expectLineEnd(after what: String) throws(TOMLError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "#") { try skipComment() }
        guard let byte = peek() else { return }
        if byte == UInt8(ascii: "\n") { pos += 1; return }
        if byte == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") { pos += 2; return }
        if byte == UInt8(ascii: "\r") { throw error("carriage return must be followed by a newline") }
        throw error("unexpected \(describeCharacter(at: pos)) after \(what); expected end of line")
    }

    // MARK: Headers

    private mutating func parseHeader(root: TOMLNode) throws(TOMLError) -> (TOMLNode, [TOMLPathComponent]) {
        let start = pos
        let startLocation = locate(start)
        pos += 1  // [
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { pos += 1 }
        skipWhitespace()
        let key = try parseKey(context: isArray ? "array of tables header" : "table header")
        skipWhitespace()
        if isArray {
            guard peek() == UInt8(ascii: "]"), peek(1) == UInt8(ascii: "]") else {
                throw error("expected ']]' to close array of tables header [[\(TOMLPath.display(keys: key.map(\.name)))]]")
            }
            pos += 2
        } else {
            guard peek() == UInt8(ascii: "]") else {
                throw error("expected ']' to close table header [\(TOMLPath.display(keys: key.map(\.name)))]")
            }
            pos += 1
        }
        let headerName = isArray
            ? "[[\(TOMLPath.display(keys: key.map(\.name)))]]"
            : "[\(TOMLPath.display(keys: key.map(\.name)))]"

        // Walk (and create) the parents.
        var node = root
        var path: [TOMLPathComponent] = []
        for part in key.dropLast() {
            path.append(.key(part.name))
            switch node.entries[part.name] {
            case nil:
                let child = TOMLNode(kind: .implicit)
                node.entries[part.name] = .table(child)
                locations[path] = part.location
                node = child
            case .table(let child):
                node = child
            case .tableArray(let array):
                guard let last = array.items.last else { throw error("empty array of tables", at: part.offset) }
                path.append(.index(array.items.count - 1))
                node = last
            case .value(let value):
                throw error("cannot use '\(TOMLPath.display(path))' as a table in \(headerName): it is already \(describeExisting(value))\(definedAt(path))", at: part.offset)
            }
        }

        // The table itself. parseKey never returns an empty key.
        guard let last = key.last else { throw error("expected a table name", at: start) }
        path.append(.key(last.name))
        let existing = node.entries[last.name]
        if isArray {
            let element = TOMLNode(kind: .explicit)
            switch existing {
            case nil:
                node.entries[last.name] = .tableArray(TOMLNodeArray([element]))
                locations[path] = startLocation
                path.append(.index(0))
            case .tableArray(let array):
                array.items.append(element)
                path.append(.index(array.items.count - 1))
            case .table:
                throw error("cannot define array of tables \(headerName): '\(TOMLPath.display(path))' is already a table\(definedAt(path))", at: start)
            case .value(let value):
                throw error("cannot define array of tables \(headerName): '\(TOMLPath.display(path))' is already \(describeExisting(value))\(definedAt(path))", at: start)
            }
            locations[path] = startLocation
            guard path.count <= Self.maxDepth else { throw error("table nesting is too deep (more than \(Self.maxDepth) levels)", at: start) }
            return (element, path)
        }

        switch existing {
        case nil:
            let child = TOMLNode(kind: .explicit)
            node.entries[last.name] = .table(child)
            locations[path] = startLocation
            guard path.count <= Self.maxDepth else { throw error("table nesting is too deep (more than \(Self.maxDepth) levels)", at: start) }
            return (child, path)
        case .table(let child):
            switch child.kind {
            case .implicit:
                child.kind = .explicit
                return (child, path)
            case .explicit, .root:
                throw error("table \(headerName) is defined more than once\(definedAt(path, word: "first defined"))", at: start)
            case .dotted:
                throw error("table \(headerName) was already defined with dotted keys\(definedAt(path))", at: start)
            }
        case .tableArray:
            throw error("cannot define table \(headerName): '\(TOMLPath.display(path))' is already an array of tables\(definedAt(path))", at: start)
        case .value(let value):
            throw error("cannot define table \(headerName): '\(TOMLPath.display(path))' is already \(describeExisting(value))\(definedAt(path))", at: start)
        }
    }

    // MARK: Keys and key/value pairs

    /// Parses `key = value` and stores it in `table`.
    private mutating func parseKeyValue(into table: TOMLNode, tablePath: [TOMLPathComponent], depth: Int) throws(TOMLError) {
        let key = try parseKey(context: "key/value pair")
        skipWhitespace()
        guard peek() == UInt8(ascii: "=") else {
            let name = TOMLPath.display(keys: key.map(\.name))
            if atLineEnd() { throw error("expected '=' after key '\(name)'") }
            throw error("expected '=' after key '\(name)', found \(describeCharacter(at: pos))")
        }
        pos += 1
        skipWhitespace()
        let valuePath = tablePath + key.map { .key($0.name) }
        let value = try parseValue(path: valuePath, depth: depth + key.count)
        try insert(key, value: value, into: table, tablePath: tablePath)
    }

    /// Stores a value under a (possibly dotted) key, creating the dotted tables.
    private mutating func insert(_ key: [KeyPart], value: TOMLValue, into table: TOMLNode, tablePath: [TOMLPathComponent]) throws(TOMLError) {
        var node = table
        var path = tablePath
        for part in key.dropLast() {
            path.append(.key(part.name))
            switch node.entries[part.name] {
            case nil:
                let child = TOMLNode(kind: .dotted)
                node.entries[part.name] = .table(child)
                locations[path] = part.location
                node = child
            case .table(let child):
                guard child.kind == .dotted else {
                    throw error("cannot add '\(TOMLPath.display(keys: key.map(\.name)))' with a dotted key: table '\(TOMLPath.display(path))' is defined by a header\(definedAt(path))", at: part.offset)
                }
                node = child
            case .tableArray:
                throw error("cannot add '\(TOMLPath.display(keys: key.map(\.name)))' with a dotted key: '\(TOMLPath.display(path))' is an array of tables\(definedAt(path))", at: part.offset)
            case .value(let existing):
                throw error("cannot use '\(TOMLPath.display(path))' as a table: it is already \(describeExisting(existing))\(definedAt(path))", at: part.offset)
            }
        }
        guard let last = key.last else { return }
        path.append(.key(last.name))
        if node.entries[last.name] != nil {
            throw error("duplicate key '\(TOMLPath.display(path))'\(definedAt(path, word: "first defined"))", at: last.offset)
        }
        node.entries[last.name] = .value(value)
        locations[path] = last.location
    }

    /// `simple-key *( ws "." ws simple-key )`.
    private mutating func parseKey(context: String) throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = [try parseSimpleKey(context: context)]
        while true {
            let save = pos
            skipWhitespace()
            guard peek() == UInt8(ascii: ".") else { pos = save; break }
            pos += 1
            skipWhitespace()
            parts.append(try parseSimpleKey(context: context))
            guard parts.count <= Self.maxDepth else {
                throw error("key has too many parts (more than \(Self.maxDepth))")
            }
        }
        return parts
    }

    private mutating func parseSimpleKey(context: String) throws(TOMLError) -> KeyPart {
        let start = pos
        guard let byte = peek() else { throw error("expected a key in \(context), found end of file") }
        switch byte {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
                throw error("multi-line strings cannot be used as keys")
            }
            let location = locate(start)
            return KeyPart(name: try parseBasicString(), offset: start, location: location)
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
                throw error("multi-line strings cannot be used as keys")
            }
            let location = locate(start)
            return KeyPart(name: try parseLiteralString(), offset: start, location: location)
        default:
            while let b = peek(), Self.isBareKeyByte(b) { pos += 1 }
            guard pos > start else {
                if atLineEnd() { throw error("expected a key in \(context)") }
                throw error("expected a key in \(context), found \(describeCharacter(at: pos))")
            }
            return KeyPart(name: String(decoding: bytes[start..<pos], as: UTF8.self), offset: start, location: locate(start))
        }
    }

    static func isBareKeyByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
            || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }

    // MARK: Values

    private mutating func parseValue(path: [TOMLPathComponent], depth: Int) throws(TOMLError) -> TOMLValue {
        guard depth <= Self.maxDepth else { throw error("nesting is too deep (more than \(Self.maxDepth) levels)") }
        guard let byte = peek() else { throw error("expected a value, found end of file") }
        switch byte {
        case UInt8(ascii: "\""):
            if peek(1) == UInt8(ascii: "\""), peek(2) == UInt8(ascii: "\"") {
                return .string(try parseMultilineString(quote: UInt8(ascii: "\""), escapes: true))
            }
            return .string(try parseBasicString())
        case UInt8(ascii: "'"):
            if peek(1) == UInt8(ascii: "'"), peek(2) == UInt8(ascii: "'") {
                return .string(try parseMultilineString(quote: UInt8(ascii: "'"), escapes: false))
            }
            return .string(try parseLiteralString())
        case UInt8(ascii: "["):
            return try parseArray(path: path, depth: depth)
        case UInt8(ascii: "{"):
            return try parseInlineTable(path: path, depth: depth)
        case UInt8(ascii: "t") where matches("true"):
            pos += 4
            return .boolean(true)
        case UInt8(ascii: "f") where matches("false"):
            pos += 5
            return .boolean(false)
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "-"),
             UInt8(ascii: "i"), UInt8(ascii: "n"):
            return try parseNumber()
        default:
            if atLineEnd() { throw error("expected a value") }
            if Self.isBareKeyByte(byte) {
                let start = pos
                var end = pos
                while end < bytes.count, Self.isBareKeyByte(bytes[end]) { end += 1 }
                let word = String(decoding: bytes[start..<end], as: UTF8.self)
                throw error("invalid value '\(word)'; strings must be quoted")
            }
            throw error("expected a value, found \(describeCharacter(at: pos))")
        }
    }

    private mutating func parseArray(path: [TOMLPathComponent], depth: Int) throws(TOMLError) -> TOMLValue {
        let start = pos
        pos += 1  // [
        var items: [TOMLValue] = []
        while true {
            try skipWhitespaceCommentsAndNewlines()
            guard let byte = peek() else { throw error("unterminated array (opened at \(locationText(start)))") }
            if byte == UInt8(ascii: "]") { pos += 1; return .array(items) }
            items.append(try parseValue(path: path + [.index(items.count)], depth: depth + 1))
            try skipWhitespaceCommentsAndNewlines()
            guard let next = peek() else { throw error("unterminated array (opened at \(locationText(start)))") }
            switch next {
            case UInt8(ascii: ","): pos += 1
            case UInt8(ascii: "]"): pos += 1; return .array(items)
            default: throw error("expected ',' or ']' after array element, found \(describeCharacter(at: pos))")
            }
        }
    }

    private mutating func parseInlineTable(path: [TOMLPathComponent], depth: Int) throws(TOMLError) -> TOMLValue {
        let start = pos
        pos += 1  // {
        let table = TOMLNode(kind: .dotted)
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { pos += 1; return .table([:]) }
        while true {
            skipWhitespace()
            if atLineEnd() || peek() == UInt8(ascii: "#") {
                throw error("unterminated inline table (opened at \(locationText(start))); inline tables must be on one line")
            }
            if peek() == UInt8(ascii: "}") { throw error("trailing comma is not allowed in an inline table") }
            try parseKeyValue(into: table, tablePath: path, depth: depth + 1)
            skipWhitespace()
            guard let byte = peek(), !atLineEnd() else {
                throw error("unterminated inline table (opened at \(locationText(start))); inline tables must be on one line")
            }
            switch byte {
            case UInt8(ascii: ","): pos += 1
            case UInt8(ascii: "}"): pos += 1; return .table(table.toValues())
            default: throw error("expected ',' or '}' in inline table, found \(describeCharacter(at: pos))")
            }
        }
    }

    // MARK: Strings

    /// `"..."` with escapes, on one line.
    private mutating func parseBasicString() throws(TOMLError) -> String {
        let start = pos
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let byte = peek(), byte != UInt8(ascii: "\n") else {
                throw error("unterminated string", at: start)
            }
            switch byte {
            case UInt8(ascii: "\""):
                pos += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &out)
            default:
                if Self.isControl(byte) {
                    if byte == UInt8(ascii: "\r") { throw error("unterminated string", at: start) }
                    throw error("control character \(describeCharacter(at: pos)) must be escaped in a string")
                }
                out.append(byte)
                pos += 1
            }
        }
    }

    /// `'...'`, verbatim, on one line.
    private mutating func parseLiteralString() throws(TOMLError) -> String {
        let start = pos
        pos += 1
        let contentStart = pos
        while true {
            guard let byte = peek(), byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "\r") else {
                throw error("unterminated literal string", at: start)
            }
            if byte == UInt8(ascii: "'") {
                let s = String(decoding: bytes[contentStart..<pos], as: UTF8.self)
                pos += 1
                return s
            }
            if Self.isControl(byte) {
                throw error("control character \(describeCharacter(at: pos)) is not allowed in a literal string")
            }
            pos += 1
        }
    }

    /// `"""..."""` (with escapes) or `'''...'''` (verbatim).
    private mutating func parseMultilineString(quote: UInt8, escapes: Bool) throws(TOMLError) -> String {
        let start = pos
        pos += 3
        // A newline right after the opening delimiter is trimmed.
        if peek() == UInt8(ascii: "\n") {
            pos += 1
        } else if peek() == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") {
            pos += 2
        }
        var out: [UInt8] = []
        while true {
            guard let byte = peek() else {
                throw error("unterminated multi-line string", at: start)
            }
            switch byte {
            case quote:
                var run = 0
                while peek(run) == quote { run += 1 }
                if run >= 3 {
                    // Up to two quotes may sit right before the closing delimiter.
                    let extra = min(run - 3, 2)
                    out.append(contentsOf: repeatElement(quote, count: extra))
                    pos += 3 + extra
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(contentsOf: repeatElement(quote, count: run))
                pos += run
            case UInt8(ascii: "\\") where escapes:
                if skipLineEndingBackslash() { continue }
                try parseEscape(into: &out)
            case UInt8(ascii: "\n"):
                out.append(byte)
                pos += 1
            case UInt8(ascii: "\r"):
                guard peek(1) == UInt8(ascii: "\n") else {
                    throw error("carriage return must be followed by a newline")
                }
                out.append(UInt8(ascii: "\n"))  // normalize CRLF to LF
                pos += 2
            default:
                if Self.isControl(byte) {
                    throw error("control character \(describeCharacter(at: pos)) must be escaped in a string")
                }
                out.append(byte)
                pos += 1
            }
        }
    }

    /// In a multi-line basic string, `\` followed by optional whitespace and a newline
    /// swallows all whitespace and newlines up to the next visible character.
    private mutating func skipLineEndingBackslash() -> Bool {
        var p = pos + 1
        while p < bytes.count, bytes[p] == UInt8(ascii: " ") || bytes[p] == UInt8(ascii: "\t") { p += 1 }
        let isNewline = p < bytes.count && (bytes[p] == UInt8(ascii: "\n")
            || (bytes[p] == UInt8(ascii: "\r") && p + 1 < bytes.count && bytes[p + 1] == UInt8(ascii: "\n")))
        guard isNewline else { return false }
        pos = p
        while let b = peek() {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") {
                pos += 1
            } else if b == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") {
                pos += 2
            } else {
                break
            }
        }
        return true
    }

    /// Parses the escape at `pos` (which is on the backslash) and appends its UTF-8.
    private mutating func parseEscape(into out: inout [UInt8]) throws(TOMLError) {
        let start = pos
        guard let code = peek(1) else { throw error("unterminated string", at: start) }
        pos += 2
        switch code {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = code == UInt8(ascii: "u") ? 4 : 8
            var value: UInt32 = 0
            for i in 0..<count {
                guard let b = peek(i), let digit = Self.hexValue(b) else {
                    throw error("invalid unicode escape: '\\\(Character(Unicode.Scalar(code)))' needs \(count) hexadecimal digits", at: start)
                }
                value = value &* 16 &+ UInt32(digit)
            }
            pos += count
            guard let scalar = Unicode.Scalar(value) else {
                throw error("invalid unicode escape: U+\(TOMLPath.hex4(value)) is not a Unicode scalar value", at: start)
            }
            UTF8.encode(scalar) { out.append($0) }
        default:
            if Self.isControl(code) || code == UInt8(ascii: "\n") || code == UInt8(ascii: " ") {
                throw error("invalid escape: backslash followed by \(describeCharacter(at: start + 1))", at: start)
            }
            throw error("invalid escape sequence '\\\(describeRaw(at: start + 1))'", at: start)
        }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(TOMLError) -> TOMLValue {
        let start = pos
        var end = pos
        while end < bytes.count, Self.isNumberTokenByte(bytes[end]) { end += 1 }
        let token = Array(bytes[start..<end])
        let text = String(decoding: token, as: UTF8.self)
        pos = end

        if Self.looksLikeDateTime(token) {
            throw error("dates and times are not supported ('\(text)'); use a string", at: start)
        }

        var body = token[...]
        var sign: UInt8?
        if let first = body.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = first
            body = body.dropFirst()
        }
        let negative = sign == UInt8(ascii: "-")

        if body.elementsEqual("inf".utf8) { return .float(negative ? -.infinity : .infinity) }
        if body.elementsEqual("nan".utf8) { return .float(.nan) }
        if let first = body.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")), sign == nil {
            throw error("invalid value '\(text)'; strings must be quoted", at: start)
        }

        // 0x, 0o, 0b
        if body.count >= 2, body.first == UInt8(ascii: "0"),
           let radix = Self.radix(for: body[body.startIndex + 1]) {
            guard sign == nil else { throw error("'\(text)': a sign is not allowed on a hexadecimal, octal or binary integer", at: start) }
            let digits = body.dropFirst(2)
            guard Self.validDigits(digits, radix: radix) else { throw error("invalid integer '\(text)'", at: start) }
            var value: Int64 = 0
            for b in digits where b != UInt8(ascii: "_") {
                guard let d = Self.hexValue(b) else { throw error("invalid integer '\(text)'", at: start) }
                let (m, o1) = value.multipliedReportingOverflow(by: Int64(radix))
                let (a, o2) = m.addingReportingOverflow(Int64(d))
                if o1 || o2 { throw error("integer '\(text)' is out of range (64-bit signed)", at: start) }
                value = a
            }
            return .integer(value)
        }

        // Decimal integer or float: split into integer part, fraction, exponent.
        var i = body.startIndex
        while i < body.endIndex, Self.isDigitOrUnderscore(body[i]) { i += 1 }
        let intPart = body[body.startIndex..<i]
        guard !intPart.isEmpty, Self.validDigits(intPart, radix: 10) else {
            throw error("invalid number '\(text)'", at: start)
        }
        if intPart.count > 1, intPart.first == UInt8(ascii: "0") {
            throw error("invalid number '\(text)': leading zeros are not allowed", at: start)
        }
        var isFloat = false
        if i < body.endIndex, body[i] == UInt8(ascii: ".") {
            isFloat = true
            i += 1
            let fracStart = i
            while i < body.endIndex, Self.isDigitOrUnderscore(body[i]) { i += 1 }
            guard Self.validDigits(body[fracStart..<i], radix: 10) else {
                throw error("invalid float '\(text)': a digit must follow the decimal point", at: start)
            }
        }
        if i < body.endIndex, body[i] == UInt8(ascii: "e") || body[i] == UInt8(ascii: "E") {
            isFloat = true
            i += 1
            if i < body.endIndex, body[i] == UInt8(ascii: "+") || body[i] == UInt8(ascii: "-") { i += 1 }
            let expStart = i
            while i < body.endIndex, Self.isDigitOrUnderscore(body[i]) { i += 1 }
            guard Self.validDigits(body[expStart..<i], radix: 10) else {
                throw error("invalid float '\(text)': bad exponent", at: start)
            }
        }
        guard i == body.endIndex else { throw error("invalid number '\(text)'", at: start) }

        let cleaned = String(decoding: token.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
        if isFloat {
            guard let d = Double(cleaned), d.isFinite else {
                throw error("float '\(text)' is out of range", at: start)
            }
            return .float(d)
        }
        guard let value = Int64(cleaned) else {
            throw error("integer '\(text)' is out of range (64-bit signed)", at: start)
        }
        return .integer(value)
    }

    private static func isNumberTokenByte(_ b: UInt8) -> Bool {
        isBareKeyByte(b) || b == UInt8(ascii: "+") || b == UInt8(ascii: ".") || b == UInt8(ascii: ":")
    }

    private static func isDigitOrUnderscore(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
    }

    /// Non-empty; every underscore between two digits of `radix`.
    private static func validDigits(_ digits: ArraySlice<UInt8>, radix: Int) -> Bool {
        guard !digits.isEmpty else { return false }
        var previousWasDigit = false
        for b in digits {
            if b == UInt8(ascii: "_") {
                guard previousWasDigit else { return false }
                previousWasDigit = false
            } else {
                guard let d = hexValue(b), d < radix else { return false }
                previousWasDigit = true
            }
        }
        return previousWasDigit
    }

    private static func radix(for b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "x"): return 16
        case UInt8(ascii: "o"): return 8
        case UInt8(ascii: "b"): return 2
        default: return nil
        }
    }

    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(b - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(b - UInt8(ascii: "A")) + 10
        default: return nil
        }
    }

    /// `1979-05-27...` or `07:32:00...`.
    private static func looksLikeDateTime(_ t: [UInt8]) -> Bool {
        func digits(_ range: Range<Int>) -> Bool {
            range.upperBound <= t.count && t[range].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
        if digits(0..<4), t.count > 4, t[4] == UInt8(ascii: "-") { return true }
        if digits(0..<2), t.count > 2, t[2] == UInt8(ascii: ":") { return true }
        return false
    }

    // MARK: Whitespace and comments

    private mutating func skipWhitespace() {
        while let b = peek(), b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { pos += 1 }
    }

    /// `#` to the end of the line (the newline is left in place).
    private mutating func skipComment() throws(TOMLError) {
        pos += 1
        while let b = peek(), b != UInt8(ascii: "\n") {
            if b == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") { return }
            if Self.isControl(b) {
                throw error("control character \(describeCharacter(at: pos)) is not allowed in a comment")
            }
            pos += 1
        }
    }

    /// Inside arrays: whitespace, newlines and comments.
    private mutating func skipWhitespaceCommentsAndNewlines() throws(TOMLError) {
        while let b = peek() {
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"):
                pos += 1
            case UInt8(ascii: "\r"):
                guard peek(1) == UInt8(ascii: "\n") else { throw error("carriage return must be followed by a newline") }
                pos += 2
            case UInt8(ascii: "#"):
                try skipComment()
            default:
                return
            }
        }
    }

    /// Control characters other than tab (newlines are handled by the callers).
    private static func isControl(_ b: UInt8) -> Bool {
        (b < 0x20 && b != UInt8(ascii: "\t")) || b == 0x7F
    }

    // MARK: Byte access

    private func peek(_ offset: Int = 0) -> UInt8? {
        let i = pos + offset
        return i < bytes.count ? bytes[i] : nil
    }

    private func matches(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard pos + count <= bytes.count else { return false }
        return word.withUTF8Buffer { buffer in
            bytes[pos..<(pos + count)].elementsEqual(buffer)
        }
    }

    private func atLineEnd() -> Bool {
        guard let b = peek() else { return true }
        return b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r")
    }

    // MARK: Locations and errors

    private func location(of offset: Int) -> TOMLLocation {
        // Last line start <= offset.
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        let lineStart = lineStarts[low]
        let end = min(max(offset, lineStart), bytes.count)
        // Count scalars, not bytes: skip UTF-8 continuation bytes.
        let column = bytes[lineStart..<end].reduce(0) { $0 + (($1 & 0xC0) == 0x80 ? 0 : 1) } + 1
        return TOMLLocation(line: low + 1, column: column)
    }

    /// `location(of:)`, counting on from the previous call when `offset` is later
    /// on the same line.
    private mutating func locate(_ offset: Int) -> TOMLLocation {
        if offset >= cache.offset, !bytes[cache.offset..<min(offset, bytes.count)].contains(UInt8(ascii: "\n")) {
            let column = cache.column + bytes[cache.offset..<min(offset, bytes.count)].reduce(0) { $0 + (($1 & 0xC0) == 0x80 ? 0 : 1) }
            cache = (offset, cache.line, column)
            return TOMLLocation(line: cache.line, column: column)
        }
        let loc = location(of: offset)
        cache = (offset, loc.line, loc.column)
        return loc
    }

    private func locationText(_ offset: Int) -> String {
        let loc = location(of: offset)
        return "line \(loc.line), column \(loc.column)"
    }

    /// "an inline table" rather than "a table": tables written as values are closed.
    private func describeExisting(_ value: TOMLValue) -> String {
        if case .table = value { return "an inline table" }
        return value.typeDescription
    }

    private func definedAt(_ path: [TOMLPathComponent], word: String = "defined") -> String {
        guard let loc = locations[path] else { return "" }
        return " (\(word) at line \(loc.line))"
    }

    private func error(_ message: String, at offset: Int? = nil) -> TOMLError {
        let loc = location(of: offset ?? pos)
        return TOMLError(line: loc.line, column: loc.column, message: message)
    }

    /// `'x'`, `end of file`, or `U+0007` for invisible characters.
    private func describeCharacter(at offset: Int) -> String {
        guard offset < bytes.count else { return "end of file" }
        let b = bytes[offset]
        if b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") { return "end of line" }
        if b < 0x20 || b == 0x7F { return "U+" + TOMLPath.hex4(UInt32(b)) }
        return "'" + describeRaw(at: offset) + "'"
    }

    /// The (possibly multi-byte) character at `offset`, unquoted.
    private func describeRaw(at offset: Int) -> String {
        guard offset < bytes.count else { return "" }
        var end = offset + 1
        while end < bytes.count, end - offset < 4, (bytes[end] & 0xC0) == 0x80 { end += 1 }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}
