import CSQLite

/// The one error type of MoatStore.
///
/// Every failure carries a stable machine-readable ``reason`` (what a service
/// maps to an RPC status, e.g. ``Reason/constraintUnique`` to ALREADY_EXISTS),
/// the SQLite result code when the failure came from SQLite (0 otherwise), and
/// a human-readable message for logs. Messages may quote SQL and SQLite's own
/// text; they are for operators, never for end users.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable machine-readable reason, e.g. `CONSTRAINT_UNIQUE` or `BUSY`.
    public struct Reason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The reason's stable string.
        public let rawValue: String

        /// Creates a reason from its stable string.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The stable string.
        public var description: String { rawValue }

        /// A UNIQUE or PRIMARY KEY constraint was violated (map to ALREADY_EXISTS).
        public static let constraintUnique = Reason(rawValue: "CONSTRAINT_UNIQUE")
        /// A FOREIGN KEY constraint was violated.
        public static let constraintForeignKey = Reason(rawValue: "CONSTRAINT_FOREIGN_KEY")
        /// A NOT NULL constraint was violated.
        public static let constraintNotNull = Reason(rawValue: "CONSTRAINT_NOT_NULL")
        /// A CHECK constraint was violated.
        public static let constraintCheck = Reason(rawValue: "CONSTRAINT_CHECK")
        /// Any other constraint violation (trigger RAISE, datatype, ...).
        public static let constraint = Reason(rawValue: "CONSTRAINT")
        /// The database was busy or locked for longer than the busy timeout.
        public static let busy = Reason(rawValue: "BUSY")
        /// The database file is corrupt or is not a database.
        public static let corrupt = Reason(rawValue: "CORRUPT")
        /// An I/O error from the operating system.
        public static let io = Reason(rawValue: "IO")
        /// The disk (or the database's size limit) is full.
        public static let full = Reason(rawValue: "FULL")
        /// A write was attempted on a read-only connection or file.
        public static let readOnly = Reason(rawValue: "READONLY")
        /// The database file could not be opened.
        public static let cantOpen = Reason(rawValue: "CANT_OPEN")
        /// Access was denied by the operating system or an authorizer.
        public static let permission = Reason(rawValue: "PERMISSION")
        /// Out of memory.
        public static let noMemory = Reason(rawValue: "NO_MEMORY")
        /// A string or blob exceeded SQLite's size limit.
        public static let tooBig = Reason(rawValue: "TOO_BIG")
        /// The operation was interrupted.
        public static let interrupted = Reason(rawValue: "INTERRUPTED")
        /// The API was used wrongly: bad parameter index or name, wrong number
        /// of bindings, several statements where one was expected, a
        /// transaction used after its body returned.
        public static let misuse = Reason(rawValue: "MISUSE")
        /// A generic SQL error: syntax error, no such table, ...
        public static let sql = Reason(rawValue: "SQL_ERROR")
        /// A result column named by the caller does not exist.
        public static let noSuchColumn = Reason(rawValue: "NO_SUCH_COLUMN")
        /// A column held NULL where a value was required.
        public static let unexpectedNull = Reason(rawValue: "UNEXPECTED_NULL")
        /// A column held a value of another storage class than requested.
        public static let typeMismatch = Reason(rawValue: "TYPE_MISMATCH")
        /// The database or connection is closed.
        public static let closed = Reason(rawValue: "CLOSED")
        /// The database's schema is newer than the migrations this code knows.
        public static let schemaTooNew = Reason(rawValue: "SCHEMA_TOO_NEW")
        /// The applied migrations recorded in the database do not match the
        /// code's list (a version renamed, removed or inserted out of order).
        public static let migrationMismatch = Reason(rawValue: "MIGRATION_MISMATCH")
        /// A migration failed and was rolled back.
        public static let migrationFailed = Reason(rawValue: "MIGRATION_FAILED")
        /// The transaction was rolled back as a whole by SQLite (or by the body
        /// itself), taking the batch's earlier writes with it.
        public static let transactionAborted = Reason(rawValue: "TRANSACTION_ABORTED")
        /// The configuration or migration list is invalid.
        public static let invalidConfiguration = Reason(rawValue: "INVALID_CONFIGURATION")
        /// Any other SQLite failure.
        public static let `internal` = Reason(rawValue: "INTERNAL")
    }

    /// The stable reason.
    public var reason: Reason
    /// The SQLite extended result code, or 0 if SQLite did not report this error.
    public var code: Int32
    /// A human-readable message (SQLite's text plus context).
    public var message: String

    /// Creates an error.
    public init(_ reason: Reason, code: Int32 = 0, message: String) {
        self.reason = reason
        self.code = code
        self.message = message
    }

    /// The SQLite primary result code (the low byte of ``code``).
    public var primaryCode: Int32 { code & 0xFF }

    /// True for every kind of constraint violation.
    public var isConstraintViolation: Bool { primaryCode == SQLITE_CONSTRAINT }

    /// True if a UNIQUE or PRIMARY KEY constraint was violated.
    public var isUniqueViolation: Bool { reason == .constraintUnique }

    /// `REASON (code N): message`.
    public var description: String {
        code == 0 ? "\(reason): \(message)" : "\(reason) (sqlite \(code)): \(message)"
    }

    /// Maps an SQLite extended result code to a stable reason.
    public static func reason(forSQLiteCode code: Int32) -> Reason {
        // Extended codes are `primary | (n << 8)`; Swift cannot import those macros.
        switch code {
        case SQLITE_CONSTRAINT | (8 << 8), SQLITE_CONSTRAINT | (6 << 8), SQLITE_CONSTRAINT | (10 << 8):
            return .constraintUnique  // UNIQUE, PRIMARYKEY, ROWID
        case SQLITE_CONSTRAINT | (3 << 8): return .constraintForeignKey
        case SQLITE_CONSTRAINT | (5 << 8): return .constraintNotNull
        case SQLITE_CONSTRAINT | (1 << 8): return .constraintCheck
        default: break
        }
        switch code & 0xFF {
        case SQLITE_CONSTRAINT: return .constraint
        case SQLITE_BUSY, SQLITE_LOCKED: return .busy
        case SQLITE_CORRUPT, SQLITE_NOTADB: return .corrupt
        case SQLITE_IOERR: return .io
        case SQLITE_FULL: return .full
        case SQLITE_READONLY: return .readOnly
        case SQLITE_CANTOPEN: return .cantOpen
        case SQLITE_PERM, SQLITE_AUTH: return .permission
        case SQLITE_NOMEM: return .noMemory
        case SQLITE_TOOBIG: return .tooBig
        case SQLITE_INTERRUPT: return .interrupted
        case SQLITE_MISUSE, SQLITE_RANGE: return .misuse
        case SQLITE_ERROR, SQLITE_SCHEMA, SQLITE_MISMATCH: return .sql
        default: return .internal
        }
    }

    /// An error for an SQLite result code, with SQLite's message.
    static func sqlite(_ code: Int32, _ message: String, sql: String? = nil) -> StoreError {
        var text = message
        if let sql { text += " [sql: \(sql.count > 200 ? String(sql.prefix(200)) + "…" : sql)]" }
        return StoreError(reason(forSQLiteCode: code), code: code, message: text)
    }

    /// The error every operation on a closed database or connection fails with.
    static func closed(_ what: String = "database") -> StoreError {
        StoreError(.closed, message: "the \(what) is closed")
    }

    /// An API misuse.
    static func misuse(_ message: String) -> StoreError {
        StoreError(.misuse, code: SQLITE_MISUSE, message: message)
    }
}
