/// The write transaction a ``Database/write(_:)`` body runs in.
///
/// The body's statements run inside a SAVEPOINT of the writer's current
/// batch transaction: if the body throws, exactly its changes are rolled
/// back. The body must not run `BEGIN`, `COMMIT`, `ROLLBACK` or `RELEASE` of
/// its own (nested ``savepoint(_:)`` is fine), and must not keep the
/// transaction: once the body returns, every use throws `MISUSE`.
public final class Transaction: SQLiteQuerying {
    private let connection: SQLiteConnection
    private var isActive = true
    private var savepointDepth = 0

    init(connection: SQLiteConnection) { self.connection = connection }

    /// Ends the transaction's validity (called when the body returns).
    func invalidate() { isActive = false }

    /// The writer connection, while the body runs.
    public func activeConnection() throws -> SQLiteConnection {
        guard isActive else { throw StoreError.misuse("transaction used after its write body returned") }
        return try connection.activeConnection()
    }

    /// The rowid of this transaction's most recent INSERT.
    public var lastInsertRowID: Int64 { connection.lastInsertRowID }

    /// Rows changed by the most recent INSERT, UPDATE or DELETE.
    public var changes: Int { connection.changes }

    /// Runs `body` in a nested savepoint: if it throws, only its changes are
    /// rolled back and the error is rethrown; the rest of the write goes on.
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        let name = "moat_nested_\(savepointDepth)"
        try execute("SAVEPOINT \(name)")
        savepointDepth += 1
        defer { savepointDepth -= 1 }
        let result: T
        do {
            result = try body()
        } catch {
            try? execute("ROLLBACK TO \(name); RELEASE \(name)")
            throw error
        }
        try execute("RELEASE \(name)")
        return result
    }
}
