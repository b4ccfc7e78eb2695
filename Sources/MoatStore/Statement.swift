import CSQLite

/// One prepared SQL statement of a ``SQLiteConnection``.
///
/// Bind parameters by 1-based index or by name (`:name`, `@name`, `$name`),
/// then ``step()`` through the rows. Not `Sendable`: it belongs to its
/// connection's thread.
///
/// ```swift
/// let statement = try connection.prepare("SELECT name FROM users WHERE id = ?")
/// try statement.bind(Int64(7), at: 1)
/// while let row = try statement.step() { print(try row.string("name")) }
/// ```
public final class Statement {
    let handle: ConnectionHandle
    private(set) var raw: OpaquePointer?
    /// The SQL text the statement was prepared from.
    public let sql: String
    /// Incremented on every step and reset, so a ``Row`` kept past its
    /// step is detected instead of reading another row.
    private(set) var generation: UInt64 = 0
    private var columnIndexes: [String: Int32] = [:]
    private var columnIndexesBuiltFor = -1
    /// True while checked out of the connection's statement cache.
    var inUse = false

    init(handle: ConnectionHandle, sql: String, persistent: Bool) throws {
        let db = try handle.open()
        self.handle = handle
        self.sql = sql
        var statement: OpaquePointer?
        var extra: OpaquePointer?
        let flags = UInt32(persistent ? SQLITE_PREPARE_PERSISTENT : 0)
        let rc = sql.withCString { text -> Int32 in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v3(db, text, -1, flags, &statement, &tail)
            // Anything after the first statement must be blank or comments.
            if rc == SQLITE_OK, let tail, tail.pointee != 0 {
                let tailRC = sqlite3_prepare_v3(db, tail, -1, 0, &extra, nil)
                if tailRC != SQLITE_OK { return tailRC }
            }
            return rc
        }
        if rc != SQLITE_OK {
            let error = handle.error(rc, sql: sql)
            sqlite3_finalize(statement)
            sqlite3_finalize(extra)
            throw error
        }
        if extra != nil {
            sqlite3_finalize(statement)
            sqlite3_finalize(extra)
            throw StoreError.misuse("expected one SQL statement, got several; use execute(_:) for scripts [sql: \(sql)]")
        }
        guard let statement else { throw StoreError.misuse("no SQL statement in \"\(sql)\"") }
        raw = statement
    }

    deinit { finalize() }

    /// Releases SQLite's statement. Later use fails with `CLOSED`.
    func finalize() {
        guard let raw else { return }
        sqlite3_finalize(raw)
        self.raw = nil
        generation &+= 1
    }

    func open() throws -> OpaquePointer {
        guard let raw, handle.db != nil else { throw StoreError.closed("statement's connection") }
        return raw
    }

    // MARK: Parameters

    /// The number of parameters (the largest parameter index).
    public var parameterCount: Int {
        guard let raw else { return 0 }
        return Int(sqlite3_bind_parameter_count(raw))
    }

    /// Binds a value to the parameter at a 1-based index.
    public func bind(_ value: any SQLiteBindable, at index: Int) throws {
        let statement = try open()
        guard index >= 1, index <= Int(sqlite3_bind_parameter_count(statement)) else {
            throw StoreError.misuse("parameter index \(index) out of range 1...\(parameterCount) [sql: \(sql)]")
        }
        let position = Int32(index)
        let transient = csqlite_transient()
        let rc: Int32
        switch value.sqliteValue {
        case .null:
            rc = sqlite3_bind_null(statement, position)
        case .integer(let integer):
            rc = sqlite3_bind_int64(statement, position, integer)
        case .real(let real):
            rc = sqlite3_bind_double(statement, position, real)
        case .text(var text):
            rc = text.withUTF8 { bytes -> Int32 in
                // An empty buffer may have no base address; NULL would bind SQL NULL.
                guard let base = bytes.baseAddress, bytes.count > 0 else {
                    return sqlite3_bind_text(statement, position, "", 0, transient)
                }
                let characters = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
                return sqlite3_bind_text64(
                    statement, position, characters, sqlite3_uint64(bytes.count), transient, UInt8(SQLITE_UTF8))
            }
        case .blob(let blob):
            rc = blob.withUnsafeBytes { bytes -> Int32 in
                guard let base = bytes.baseAddress, bytes.count > 0 else {
                    return sqlite3_bind_zeroblob(statement, position, 0)
                }
                return sqlite3_bind_blob64(statement, position, base, sqlite3_uint64(bytes.count), transient)
            }
        }
        guard rc == SQLITE_OK else { throw handle.error(rc, sql: sql) }
    }

    /// Binds NULL to the parameter at a 1-based index.
    public func bindNull(at index: Int) throws {
        try bind(SQLiteValue.null, at: index)
    }

    /// Binds a value to a named parameter. `name` may include its prefix
    /// (`:id`) or not (`id`, then `:id`, `@id` and `$id` are tried).
    public func bind(_ value: any SQLiteBindable, named name: String) throws {
        try bind(value, at: try parameterIndex(named: name))
    }

    /// The 1-based index of a named parameter (see ``bind(_:named:)``).
    public func parameterIndex(named name: String) throws -> Int {
        let statement = try open()
        let candidates = [":", "@", "$"].contains(where: name.hasPrefix) ? [name] : [":" + name, "@" + name, "$" + name]
        for candidate in candidates {
            let index = sqlite3_bind_parameter_index(statement, candidate)
            if index > 0 { return Int(index) }
        }
        throw StoreError.misuse("no parameter named \(name) [sql: \(sql)]")
    }

    /// Binds every parameter by position. The number of values must equal
    /// ``parameterCount``.
    public func bind(_ values: [any SQLiteBindable]) throws {
        let statement = try open()
        let expected = Int(sqlite3_bind_parameter_count(statement))
        guard values.count == expected else {
            throw StoreError.misuse("expected \(expected) bindings, got \(values.count) [sql: \(sql)]")
        }
        for (offset, value) in values.enumerated() { try bind(value, at: offset + 1) }
    }

    /// Binds every parameter by name. Every parameter of the statement must be
    /// named and given, and every name given must exist.
    public func bind(_ values: [String: any SQLiteBindable]) throws {
        let statement = try open()
        let expected = Int(sqlite3_bind_parameter_count(statement))
        var bound = Set<Int>()
        for (name, value) in values {
            let index = try parameterIndex(named: name)
            try bind(value, at: index)
            bound.insert(index)
        }
        guard bound.count == expected else {
            throw StoreError.misuse("expected \(expected) named bindings, got \(bound.count) [sql: \(sql)]")
        }
    }

    /// Sets every parameter back to NULL.
    public func clearBindings() {
        guard let raw else { return }
        sqlite3_clear_bindings(raw)
    }

    // MARK: Execution

    /// Runs the statement to its next row. Returns the row, or nil when the
    /// statement is done. On error the statement is reset.
    public func step() throws -> Row? {
        let statement = try open()
        generation &+= 1
        let rc = sqlite3_step(statement)
        switch rc {
        case SQLITE_ROW:
            return Row(statement: self, generation: generation)
        case SQLITE_DONE:
            return nil
        default:
            let error = handle.error(rc, sql: sql)
            sqlite3_reset(statement)
            throw error
        }
    }

    /// Steps until done, ignoring rows; returns the number of rows changed.
    @discardableResult
    public func run() throws -> Int {
        while try step() != nil {}
        guard let db = handle.db else { return 0 }
        return Int(sqlite3_changes64(db))
    }

    /// Rewinds the statement so it can run again; bindings are kept.
    public func reset() {
        guard let raw else { return }
        generation &+= 1
        sqlite3_reset(raw)
    }

    // MARK: Columns

    /// The number of result columns.
    public var columnCount: Int {
        guard let raw else { return 0 }
        return Int(sqlite3_column_count(raw))
    }

    /// The name of a result column (0-based).
    public func columnName(at index: Int) -> String? {
        guard let raw, index >= 0, index < columnCount, let name = sqlite3_column_name(raw, Int32(index)) else {
            return nil
        }
        return String(cString: name)
    }

    /// The 0-based index of a result column by name (exact match first, then
    /// case-insensitive, as SQL names are).
    public func columnIndex(named name: String) -> Int? {
        let count = columnCount
        if columnIndexesBuiltFor != count {
            // Built once per statement; rebuilt if a re-prepare changed the columns.
            var indexes: [String: Int32] = [:]
            for index in 0..<count {
                if let columnName = columnName(at: index), indexes[columnName] == nil {
                    indexes[columnName] = Int32(index)
                }
            }
            columnIndexes = indexes
            columnIndexesBuiltFor = count
        }
        if let index = columnIndexes[name] { return Int(index) }
        let lowered = name.lowercased()
        for index in 0..<count where columnName(at: index)?.lowercased() == lowered { return index }
        return nil
    }
}
