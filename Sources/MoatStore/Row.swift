import CSQLite

/// The current row of a stepping ``Statement``.
///
/// Valid only until the statement steps again or is reset (in the query
/// helpers: until the row closure returns); a stale row throws `MISUSE`
/// instead of reading another row's data.
///
/// Getters are strict about storage classes and never crash on bad data:
/// - a non-optional getter on NULL throws `UNEXPECTED_NULL`;
/// - a value of another storage class throws `TYPE_MISMATCH` (only
///   ``double(at:)`` also accepts an INTEGER);
/// - an unknown column name throws `NO_SUCH_COLUMN`.
///
/// `optional…` variants return nil for NULL.
public struct Row {
    let statement: Statement
    let generation: UInt64

    /// The number of columns.
    public var columnCount: Int { statement.columnCount }

    /// The column names, in order.
    public var columnNames: [String] { (0..<columnCount).map { statement.columnName(at: $0) ?? "" } }

    private func column(_ index: Int) throws -> (OpaquePointer, Int32) {
        let raw = try statement.open()
        guard generation == statement.generation else {
            throw StoreError.misuse("row used after its statement moved on [sql: \(statement.sql)]")
        }
        guard index >= 0, index < Int(sqlite3_column_count(raw)) else {
            throw StoreError(.noSuchColumn, message: "no column at index \(index) [sql: \(statement.sql)]")
        }
        return (raw, Int32(index))
    }

    /// The 0-based index of a named column, or `NO_SUCH_COLUMN`.
    public func index(of name: String) throws -> Int {
        guard let index = statement.columnIndex(named: name) else {
            throw StoreError(.noSuchColumn, message: "no column named \(name) [sql: \(statement.sql)]")
        }
        return index
    }

    private func mismatch(_ index: Int, expected: String, found type: Int32) -> StoreError {
        let name = statement.columnName(at: index) ?? "#\(index)"
        if type == SQLITE_NULL {
            return StoreError(.unexpectedNull, message: "column \(name) is NULL [sql: \(statement.sql)]")
        }
        let found =
            switch type {
            case SQLITE_INTEGER: "INTEGER"
            case SQLITE_FLOAT: "REAL"
            case SQLITE_TEXT: "TEXT"
            case SQLITE_BLOB: "BLOB"
            default: "unknown"
            }
        return StoreError(
            .typeMismatch, message: "column \(name) is \(found), expected \(expected) [sql: \(statement.sql)]")
    }

    // MARK: By index

    /// True if the column is NULL.
    public func isNull(at index: Int) throws -> Bool {
        let (raw, column) = try column(index)
        return sqlite3_column_type(raw, column) == SQLITE_NULL
    }

    /// The column's value, whatever its storage class.
    public func value(at index: Int) throws -> SQLiteValue {
        let (raw, column) = try column(index)
        switch sqlite3_column_type(raw, column) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(raw, column))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(raw, column))
        case SQLITE_TEXT: return .text(try text(raw, column))
        case SQLITE_BLOB: return .blob(try bytes(raw, column))
        default: return .null
        }
    }

    /// An INTEGER column.
    public func int64(at index: Int) throws -> Int64 {
        let (raw, column) = try column(index)
        let type = sqlite3_column_type(raw, column)
        guard type == SQLITE_INTEGER else { throw mismatch(index, expected: "INTEGER", found: type) }
        return sqlite3_column_int64(raw, column)
    }

    /// An INTEGER column as `Int`.
    public func int(at index: Int) throws -> Int { Int(try int64(at: index)) }

    /// A REAL (or INTEGER) column.
    public func double(at index: Int) throws -> Double {
        let (raw, column) = try column(index)
        let type = sqlite3_column_type(raw, column)
        guard type == SQLITE_FLOAT || type == SQLITE_INTEGER else {
            throw mismatch(index, expected: "REAL", found: type)
        }
        return sqlite3_column_double(raw, column)
    }

    /// An INTEGER column as a boolean (non-zero is true).
    public func bool(at index: Int) throws -> Bool { try int64(at: index) != 0 }

    /// A TEXT column (decoded as UTF-8; invalid bytes become U+FFFD).
    public func string(at index: Int) throws -> String {
        let (raw, column) = try column(index)
        let type = sqlite3_column_type(raw, column)
        guard type == SQLITE_TEXT else { throw mismatch(index, expected: "TEXT", found: type) }
        return try text(raw, column)
    }

    /// A BLOB column.
    public func blob(at index: Int) throws -> [UInt8] {
        let (raw, column) = try column(index)
        let type = sqlite3_column_type(raw, column)
        guard type == SQLITE_BLOB else { throw mismatch(index, expected: "BLOB", found: type) }
        return try bytes(raw, column)
    }

    /// An INTEGER column, or nil for NULL.
    public func optionalInt64(at index: Int) throws -> Int64? { try isNull(at: index) ? nil : try int64(at: index) }
    /// An INTEGER column as `Int`, or nil for NULL.
    public func optionalInt(at index: Int) throws -> Int? { try isNull(at: index) ? nil : try int(at: index) }
    /// A REAL (or INTEGER) column, or nil for NULL.
    public func optionalDouble(at index: Int) throws -> Double? { try isNull(at: index) ? nil : try double(at: index) }
    /// An INTEGER column as a boolean, or nil for NULL.
    public func optionalBool(at index: Int) throws -> Bool? { try isNull(at: index) ? nil : try bool(at: index) }
    /// A TEXT column, or nil for NULL.
    public func optionalString(at index: Int) throws -> String? { try isNull(at: index) ? nil : try string(at: index) }
    /// A BLOB column, or nil for NULL.
    public func optionalBlob(at index: Int) throws -> [UInt8]? { try isNull(at: index) ? nil : try blob(at: index) }

    // MARK: By name

    /// True if the named column is NULL.
    public func isNull(_ name: String) throws -> Bool { try isNull(at: index(of: name)) }
    /// The named column's value, whatever its storage class.
    public func value(_ name: String) throws -> SQLiteValue { try value(at: index(of: name)) }
    /// A named INTEGER column.
    public func int64(_ name: String) throws -> Int64 { try int64(at: index(of: name)) }
    /// A named INTEGER column as `Int`.
    public func int(_ name: String) throws -> Int { try int(at: index(of: name)) }
    /// A named REAL (or INTEGER) column.
    public func double(_ name: String) throws -> Double { try double(at: index(of: name)) }
    /// A named INTEGER column as a boolean.
    public func bool(_ name: String) throws -> Bool { try bool(at: index(of: name)) }
    /// A named TEXT column.
    public func string(_ name: String) throws -> String { try string(at: index(of: name)) }
    /// A named BLOB column.
    public func blob(_ name: String) throws -> [UInt8] { try blob(at: index(of: name)) }
    /// A named INTEGER column, or nil for NULL.
    public func optionalInt64(_ name: String) throws -> Int64? { try optionalInt64(at: index(of: name)) }
    /// A named INTEGER column as `Int`, or nil for NULL.
    public func optionalInt(_ name: String) throws -> Int? { try optionalInt(at: index(of: name)) }
    /// A named REAL (or INTEGER) column, or nil for NULL.
    public func optionalDouble(_ name: String) throws -> Double? { try optionalDouble(at: index(of: name)) }
    /// A named INTEGER column as a boolean, or nil for NULL.
    public func optionalBool(_ name: String) throws -> Bool? { try optionalBool(at: index(of: name)) }
    /// A named TEXT column, or nil for NULL.
    public func optionalString(_ name: String) throws -> String? { try optionalString(at: index(of: name)) }
    /// A named BLOB column, or nil for NULL.
    public func optionalBlob(_ name: String) throws -> [UInt8]? { try optionalBlob(at: index(of: name)) }

    // MARK: Raw access

    private func text(_ raw: OpaquePointer, _ column: Int32) throws -> String {
        let pointer = sqlite3_column_text(raw, column)
        let count = Int(sqlite3_column_bytes(raw, column))
        guard let pointer else {
            if count == 0 { return "" }
            throw StoreError(.noMemory, code: SQLITE_NOMEM, message: "cannot read a text column")
        }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    private func bytes(_ raw: OpaquePointer, _ column: Int32) throws -> [UInt8] {
        let pointer = sqlite3_column_blob(raw, column)
        let count = Int(sqlite3_column_bytes(raw, column))
        guard let pointer else {
            if count == 0 { return [] }
            throw StoreError(.noMemory, code: SQLITE_NOMEM, message: "cannot read a blob column")
        }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
