/// Something SQL can run on: a ``SQLiteConnection`` (in a read) or a
/// ``Transaction`` (in a write). Domain code written against
/// `some SQLiteQuerying` works in both.
///
/// The helpers prepare statements through the connection's cache, bind the
/// values, run, reset, and map rows:
///
/// ```swift
/// try tx.execute("INSERT INTO users (tenant_id, email) VALUES (?, ?)", [tenant, email])
/// let emails = try db.query("SELECT email FROM users WHERE tenant_id = ?", [tenant]) {
///     try $0.string("email")
/// }
/// ```
public protocol SQLiteQuerying {
    /// The connection to run on, or an error if it may no longer be used.
    func activeConnection() throws -> SQLiteConnection
}

extension SQLiteQuerying {
    /// Runs an SQL script: any number of `;`-separated statements, without
    /// bindings and without the statement cache. For DDL and pragmas; use
    /// ``execute(_:_:)-([any SQLiteBindable])`` for statements with values.
    public func execute(_ sql: String) throws {
        try activeConnection().runScript(sql)
    }

    /// Runs one statement with positional bindings (`?`); returns the number
    /// of rows an INSERT, UPDATE or DELETE changed.
    @discardableResult
    public func execute(_ sql: String, _ bindings: [any SQLiteBindable]) throws -> Int {
        try activeConnection().withStatement(sql) { statement in
            try statement.bind(bindings)
            return try statement.run()
        }
    }

    /// Runs one statement with named bindings (`:name`); returns the number of
    /// rows an INSERT, UPDATE or DELETE changed.
    @discardableResult
    public func execute(_ sql: String, _ bindings: [String: any SQLiteBindable]) throws -> Int {
        try activeConnection().withStatement(sql) { statement in
            try statement.bind(bindings)
            return try statement.run()
        }
    }

    /// Runs one query with positional bindings and maps every row.
    public func query<T>(
        _ sql: String, _ bindings: [any SQLiteBindable] = [], _ transform: (Row) throws -> T
    ) throws -> [T] {
        try activeConnection().withStatement(sql) { statement in
            try statement.bind(bindings)
            var results: [T] = []
            while let row = try statement.step() { results.append(try transform(row)) }
            return results
        }
    }

    /// Runs one query with named bindings and maps every row.
    public func query<T>(
        _ sql: String, _ bindings: [String: any SQLiteBindable], _ transform: (Row) throws -> T
    ) throws -> [T] {
        try activeConnection().withStatement(sql) { statement in
            try statement.bind(bindings)
            var results: [T] = []
            while let row = try statement.step() { results.append(try transform(row)) }
            return results
        }
    }

    /// Runs one query with positional bindings and maps its first row, if any.
    public func queryFirst<T>(
        _ sql: String, _ bindings: [any SQLiteBindable] = [], _ transform: (Row) throws -> T
    ) throws -> T? {
        try activeConnection().withStatement(sql) { statement in
            try statement.bind(bindings)
            return try statement.step().map(transform)
        }
    }

    /// Runs one query with named bindings and maps its first row, if any.
    public func queryFirst<T>(
        _ sql: String, _ bindings: [String: any SQLiteBindable], _ transform: (Row) throws -> T
    ) throws -> T? {
        try activeConnection().withStatement(sql) { statement in
            try statement.bind(bindings)
            return try statement.step().map(transform)
        }
    }
}

extension SQLiteConnection: SQLiteQuerying {
    /// The connection itself, or `CLOSED`.
    public func activeConnection() throws -> SQLiteConnection {
        guard isOpen else { throw StoreError.closed("connection") }
        return self
    }
}
