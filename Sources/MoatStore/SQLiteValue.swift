/// One SQLite value, by storage class.
public enum SQLiteValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// A 64-bit signed integer.
    case integer(Int64)
    /// A 64-bit IEEE floating point number.
    case real(Double)
    /// UTF-8 text (may contain NUL characters).
    case text(String)
    /// Raw bytes (may be empty, may contain NUL bytes).
    case blob([UInt8])
}

/// A Swift value that can be bound to a statement parameter.
///
/// Conforming types: `Int64`, `Int`, `Int32`, `Double`, `Bool` (0/1),
/// `String`, `[UInt8]` (blob), ``SQLiteValue`` and `Optional` of any of them
/// (`nil` binds NULL).
public protocol SQLiteBindable: Sendable {
    /// The value to bind.
    var sqliteValue: SQLiteValue { get }
}

extension SQLiteValue: SQLiteBindable {
    /// The value itself.
    public var sqliteValue: SQLiteValue { self }
}

extension Int64: SQLiteBindable {
    /// `.integer(self)`.
    public var sqliteValue: SQLiteValue { .integer(self) }
}

extension Int: SQLiteBindable {
    /// `.integer(Int64(self))`.
    public var sqliteValue: SQLiteValue { .integer(Int64(self)) }
}

extension Int32: SQLiteBindable {
    /// `.integer(Int64(self))`.
    public var sqliteValue: SQLiteValue { .integer(Int64(self)) }
}

extension Double: SQLiteBindable {
    /// `.real(self)`.
    public var sqliteValue: SQLiteValue { .real(self) }
}

extension Bool: SQLiteBindable {
    /// `.integer(1)` for true, `.integer(0)` for false.
    public var sqliteValue: SQLiteValue { .integer(self ? 1 : 0) }
}

extension String: SQLiteBindable {
    /// `.text(self)`.
    public var sqliteValue: SQLiteValue { .text(self) }
}

extension Array: SQLiteBindable where Element == UInt8 {
    /// `.blob(self)`.
    public var sqliteValue: SQLiteValue { .blob(self) }
}

extension Optional: SQLiteBindable where Wrapped: SQLiteBindable {
    /// The wrapped value's, or `.null` for `nil`.
    public var sqliteValue: SQLiteValue {
        switch self {
        case .none: return .null
        case .some(let value): return value.sqliteValue
        }
    }
}
