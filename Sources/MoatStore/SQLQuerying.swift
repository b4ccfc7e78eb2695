/// A result row the account store can read, on SQLite (``Row``) or
/// PostgreSQL (`PostgresRow`). Getters are strict: NULL where a value is
/// required throws `UNEXPECTED_NULL`, another type `TYPE_MISMATCH`, an unknown
/// column `NO_SUCH_COLUMN`.
protocol SQLRow: SendableMetatype {
    func isNull(_ name: String) throws -> Bool
    func int64(_ name: String) throws -> Int64
    func int(_ name: String) throws -> Int
    func bool(_ name: String) throws -> Bool
    func string(_ name: String) throws -> String
    func blob(_ name: String) throws -> [UInt8]
    func optionalInt64(_ name: String) throws -> Int64?
    func optionalInt(_ name: String) throws -> Int?
    func optionalString(_ name: String) throws -> String?
    func optionalBlob(_ name: String) throws -> [UInt8]?
}

/// Where the account store's SQL runs: an SQLite connection or transaction,
/// or a PostgreSQL connection inside its transaction. The statements are
/// written once with `?` / `?N` placeholders in the SQL both databases
/// understand; the PostgreSQL side numbers them `$N` and overrides the few
/// methods whose SQL differs (see `PostgresAccountStore`).
protocol SQLQuerying {
    /// The row type the query helpers hand to their transforms.
    associatedtype ResultRow: SQLRow

    /// Runs one statement; returns the number of rows it changed.
    @discardableResult
    func execute(_ sql: String, _ bindings: [any SQLiteBindable]) throws -> Int
    /// Runs one query and maps every row.
    func query<T>(_ sql: String, _ bindings: [any SQLiteBindable], _ transform: (ResultRow) throws -> T) throws -> [T]
    /// Runs one query and maps its first row, if any.
    func queryFirst<T>(_ sql: String, _ bindings: [any SQLiteBindable], _ transform: (ResultRow) throws -> T) throws
        -> T?
}

extension Row: SQLRow {}

extension SQLiteConnection: SQLQuerying {
    typealias ResultRow = Row
}

extension Transaction: SQLQuerying {
    typealias ResultRow = Row
}
