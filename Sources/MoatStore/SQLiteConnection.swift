import CSQLite

/// SQLite's `synchronous` setting for the connection's commits.
public enum SynchronousMode: String, Sendable, Hashable, CaseIterable {
    /// Every commit is fsynced to the write-ahead log before it returns: a
    /// committed write survives power loss. The default.
    case full = "FULL"
    /// Commits are fsynced only at checkpoints: safe against process crashes
    /// and never corrupting, but the last commits may be lost on power loss.
    case normal = "NORMAL"
}

/// How a connection opens its file.
public struct OpenFlags: OptionSet, Sendable, Hashable {
    /// The SQLite `SQLITE_OPEN_*` bits.
    public let rawValue: Int32

    /// Creates flags from SQLite's bits.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Open for reading only.
    public static let readOnly = OpenFlags(rawValue: SQLITE_OPEN_READONLY)
    /// Open for reading and writing.
    public static let readWrite = OpenFlags(rawValue: SQLITE_OPEN_READWRITE)
    /// Create the file if it does not exist (with `readWrite`).
    public static let create = OpenFlags(rawValue: SQLITE_OPEN_CREATE)
    /// Interpret the path as a `file:` URI.
    public static let uri = OpenFlags(rawValue: SQLITE_OPEN_URI)
    /// Read, write, create: the writer's flags.
    public static let readWriteCreate: OpenFlags = [.readWrite, .create]
}

/// Owns the raw `sqlite3*` so statements can check that it is still open.
final class ConnectionHandle {
    private(set) var db: OpaquePointer?

    init(_ db: OpaquePointer) { self.db = db }

    /// The open handle, or `CLOSED`.
    func open() throws -> OpaquePointer {
        guard let db else { throw StoreError.closed("connection") }
        return db
    }

    /// SQLite's message for the last error on this connection.
    func errorMessage() -> String {
        guard let db, let text = sqlite3_errmsg(db) else { return "connection closed" }
        return String(cString: text)
    }

    /// An error for `code` carrying SQLite's current message.
    func error(_ code: Int32, sql: String? = nil) -> StoreError {
        var extended = code
        if let db, code & 0xFF == sqlite3_errcode(db) & 0xFF { extended = sqlite3_extended_errcode(db) }
        return .sqlite(extended, errorMessage(), sql: sql)
    }

    func close() {
        guard let db else { return }
        // close_v2 defers the close until outstanding statements are finalized.
        sqlite3_close_v2(db)
        self.db = nil
    }

    deinit { close() }
}

/// One SQLite connection.
///
/// Not `Sendable`: a connection is owned by one thread at a time. Inside
/// MoatStore each connection lives on its own dedicated thread; callers get
/// one only for the duration of a ``Database/read(_:)`` body (or as the
/// ``Transaction`` of a ``Database/write(_:)`` body) and must not keep it.
///
/// Prepared statements are cached by SQL text (``withStatement(_:_:)``); the
/// query helpers (`execute(_:_:)`, `query(_:_:_:)`, `queryFirst(_:_:_:)`) use
/// the cache.
public final class SQLiteConnection {
    let handle: ConnectionHandle
    /// The path the connection was opened with.
    public let path: String
    /// True if the connection was opened read-only.
    public let isReadOnly: Bool

    private var cache: [String: Statement] = [:]
    private var cacheOrder: [String] = []
    private let cacheCapacity: Int

    /// The version of the linked SQLite library, e.g. `3.40.1`.
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }

    /// Opens a connection and applies Moat's pragmas: `journal_mode=WAL`
    /// (writable connections; verified), `synchronous`, `foreign_keys=ON` and
    /// the busy timeout. Extended result codes are always on.
    ///
    /// - Parameters:
    ///   - path: the database file (or a `file:` URI with ``OpenFlags/uri``).
    ///   - flags: how to open it; `SQLITE_OPEN_NOMUTEX` is always added, since
    ///     a connection is used by one thread at a time.
    ///   - synchronous: the commit durability mode.
    ///   - busyTimeout: how long to wait for a lock held by another connection.
    ///   - statementCacheCapacity: how many prepared statements to keep.
    public init(
        path: String, flags: OpenFlags = .readWriteCreate, synchronous: SynchronousMode = .full,
        busyTimeout: Duration = .seconds(5), statementCacheCapacity: Int = 64
    ) throws {
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags.rawValue | SQLITE_OPEN_NOMUTEX, nil)
        guard let db else {
            throw StoreError(.noMemory, code: SQLITE_NOMEM, message: "cannot allocate a connection")
        }
        let handle = ConnectionHandle(db)
        guard rc == SQLITE_OK else {
            let error = handle.error(rc)
            handle.close()
            throw StoreError(error.reason, code: error.code, message: "cannot open \(path): \(error.message)")
        }
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, Self.milliseconds(busyTimeout))
        self.handle = handle
        self.path = path
        self.isReadOnly = sqlite3_db_readonly(db, "main") == 1
        self.cacheCapacity = max(0, statementCacheCapacity)
        do {
            if !isReadOnly {
                let mode = try queryFirst("PRAGMA journal_mode=WAL") { try $0.string(at: 0) }
                guard mode?.lowercased() == "wal" else {
                    throw StoreError(
                        .cantOpen, message: "cannot switch \(path) to WAL mode (journal_mode is \(mode ?? "unknown"))")
                }
            }
            try execute("PRAGMA synchronous=\(synchronous.rawValue); PRAGMA foreign_keys=ON;")
        } catch {
            closeNow()
            throw error
        }
    }

    /// True for the connections a ``Database`` owns: only the database closes them.
    var isManaged = false

    /// Closes the connection: finalizes cached statements and closes the
    /// handle. Idempotent. Statements still held elsewhere fail with `CLOSED`.
    /// Does nothing on a connection lent by a ``Database`` (a read body's
    /// connection, a transaction's): the database closes those itself.
    public func close() {
        guard !isManaged else { return }
        closeNow()
    }

    /// Closes the connection, managed or not.
    func closeNow() {
        for statement in cache.values { statement.finalize() }
        cache.removeAll()
        cacheOrder.removeAll()
        handle.close()
    }

    deinit { closeNow() }

    /// True until ``close()``.
    public var isOpen: Bool { handle.db != nil }

    /// Runs an SQL script with `sqlite3_exec` (see ``SQLiteQuerying/execute(_:)``).
    func runScript(_ sql: String) throws {
        let db = try handle.open()
        var errorText: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errorText)
        guard rc == SQLITE_OK else {
            var message = handle.errorMessage()
            if let errorText {
                message = String(cString: errorText)
                sqlite3_free(errorText)
            }
            throw StoreError.sqlite(sqlite3_extended_errcode(db), message, sql: sql)
        }
    }

    /// Prepares one statement, not cached. The statement is finalized when the
    /// returned object is released. Prefer ``withStatement(_:_:)``.
    public func prepare(_ sql: String) throws -> Statement {
        try Statement(handle: handle, sql: sql, persistent: false)
    }

    /// Runs `body` with a prepared statement from the cache (preparing and
    /// caching it on first use). The statement is reset and its bindings
    /// cleared when `body` returns; it must not be used after that. If the
    /// same SQL is already in use (a nested query), a fresh uncached statement
    /// is used instead.
    public func withStatement<R>(_ sql: String, _ body: (Statement) throws -> R) throws -> R {
        let statement = try checkOut(sql)
        statement.inUse = true
        defer {
            statement.reset()
            statement.clearBindings()
            statement.inUse = false
        }
        return try body(statement)
    }

    private func checkOut(_ sql: String) throws -> Statement {
        if let cached = cache[sql] {
            if cached.inUse { return try Statement(handle: handle, sql: sql, persistent: false) }
            if let position = cacheOrder.lastIndex(of: sql), position != cacheOrder.count - 1 {
                cacheOrder.remove(at: position)
                cacheOrder.append(sql)
            }
            return cached
        }
        let statement = try Statement(handle: handle, sql: sql, persistent: cacheCapacity > 0)
        guard cacheCapacity > 0 else { return statement }
        if cache.count >= cacheCapacity,
            let victim = cacheOrder.firstIndex(where: { cache[$0]?.inUse == false })
        {
            let key = cacheOrder.remove(at: victim)
            cache.removeValue(forKey: key)?.finalize()
        }
        if cache.count < cacheCapacity {
            cache[sql] = statement
            cacheOrder.append(sql)
        }
        return statement
    }

    /// The number of statements in the cache.
    public var cachedStatementCount: Int { cache.count }

    /// The rowid of the most recent successful INSERT on this connection.
    public var lastInsertRowID: Int64 {
        guard let db = handle.db else { return 0 }
        return sqlite3_last_insert_rowid(db)
    }

    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    public var changes: Int {
        guard let db = handle.db else { return 0 }
        return Int(sqlite3_changes64(db))
    }

    /// Rows changed since the connection was opened.
    public var totalChanges: Int {
        guard let db = handle.db else { return 0 }
        return Int(sqlite3_total_changes64(db))
    }

    /// True when no transaction is open.
    public var isAutocommit: Bool {
        guard let db = handle.db else { return true }
        return sqlite3_get_autocommit(db) != 0
    }

    /// Resets every statement of this connection that is still stepping, so a
    /// transaction can end cleanly whatever a body left behind.
    func resetActiveStatements() {
        guard let db = handle.db else { return }
        var statement = sqlite3_next_stmt(db, nil)
        while let current = statement {
            if sqlite3_stmt_busy(current) != 0 { sqlite3_reset(current) }
            statement = sqlite3_next_stmt(db, current)
        }
    }

    static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 { return 0 }
        if seconds >= Int64(Int32.max / 1000) { return Int32.max }
        return Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
