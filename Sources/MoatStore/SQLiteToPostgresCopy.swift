import Foundation
public import Logging

/// Copies a stopped SQLite deployment's database into an empty PostgreSQL
/// database ("moving a deployment"): every table of ``AccountSchema/tables``
/// row for row (sessions, sealed 2FA secrets, the key fingerprint in
/// `meta`, the outbox and its consumers' cursors), then the event sequence
/// (so no sequence is ever reused) and the security-log ids. One
/// PostgreSQL transaction: the target ends up with everything or nothing.
public enum SQLiteToPostgresCopy {
    /// What a copy did: rows per table, on both sides (equal after a copy).
    public struct Report: Sendable, Equatable {
        /// Rows per table in the SQLite database.
        public var source: [String: Int]
        /// Rows per table in PostgreSQL after the copy.
        public var target: [String: Int]
        /// The event sequence the PostgreSQL store continues after.
        public var eventSequence: Int64
    }

    /// Why a copy was refused or failed; nothing was written.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, for the operator.
        public var description: String
    }

    /// Copies `sqlitePath` (migrated to the current schema first) into the
    /// PostgreSQL database of `postgres` (migrated too). Refuses a target
    /// that holds any row in any of the store's tables.
    public static func copy(sqlitePath: String, postgres: PostgresConfiguration, logger: Logger) async throws -> Report {
        guard FileManager.default.fileExists(atPath: sqlitePath) else {
            throw Failure(description: "no database at \(sqlitePath)")
        }
        let source = try await Database.open(
            configuration: StoreConfiguration(path: sqlitePath, readerCount: 1), migrations: AccountSchema.migrations,
            logger: logger)
        let tables: [(name: String, columns: [String], rows: [[SQLiteValue]])]
        let sequence: Int64
        do {
            (tables, sequence) = try await source.read { connection in
                var tables: [(name: String, columns: [String], rows: [[SQLiteValue]])] = []
                for table in AccountSchema.tables {
                    var columns: [String] = []
                    let rows = try connection.query("SELECT * FROM \(table)") { row -> [SQLiteValue] in
                        if columns.isEmpty { columns = row.columnNames }
                        return try (0..<row.columnCount).map { try row.value(at: $0) }
                    }
                    tables.append((table, columns, rows))
                }
                // AUTOINCREMENT's high-water mark: never reuse a sequence,
                // even of events already deleted.
                let recorded = try connection.queryFirst("SELECT seq FROM sqlite_sequence WHERE name = 'events'") {
                    try $0.int64(at: 0)
                } ?? 0
                let newest = try connection.queryFirst("SELECT COALESCE(max(sequence), 0) FROM events") {
                    try $0.int64(at: 0)
                } ?? 0
                return (tables, max(recorded, newest))
            }
        } catch {
            await source.close()
            throw error
        }
        await source.close()

        let target = try await PostgresDatabase.open(
            configuration: postgres, migrations: PostgresSchema.migrations, logger: logger)
        let counts: [String: Int]
        do {
            counts = try await insert(tables, sequence: sequence, into: target)
        } catch {
            await target.close()
            throw error
        }
        await target.close()
        let sourceCounts = Dictionary(uniqueKeysWithValues: tables.map { ($0.name, $0.rows.count) })
        guard counts == sourceCounts else {
            throw Failure(description: "row counts differ after the copy: sqlite \(sourceCounts), postgres \(counts)")
        }
        return Report(source: sourceCounts, target: counts, eventSequence: sequence)
    }

    /// In one transaction: refuses a non-empty target, inserts every row,
    /// sets the sequences; returns the rows per table now in the target.
    private static func insert(
        _ tables: [(name: String, columns: [String], rows: [[SQLiteValue]])], sequence: Int64, into target: PostgresDatabase
    ) async throws -> [String: Int] {
        try await target.write { db -> [String: Int] in
            for table in AccountSchema.tables {
                let held = try db.queryFirst("SELECT count(*) AS n FROM \(table)", []) { try $0.int("n") } ?? 0
                if held > 0 {
                    throw Failure(description: "the PostgreSQL database is not empty (\(table) has \(held) rows); refusing to copy")
                }
            }
            let current = try db.queryFirst("SELECT value FROM event_sequence WHERE id = 1", []) { try $0.int64("value") }
            if (current ?? 0) != 0 {
                throw Failure(description: "the PostgreSQL database has used event sequences; refusing to copy")
            }
            for table in tables where !table.rows.isEmpty {
                let overriding = table.name == "security_log" ? " OVERRIDING SYSTEM VALUE" : ""
                let names = table.columns.joined(separator: ", ")
                // Several rows per statement, under PostgreSQL's 65535 parameters.
                let perStatement = max(1, 10_000 / max(1, table.columns.count))
                var start = 0
                while start < table.rows.count {
                    let batch = table.rows[start..<min(start + perStatement, table.rows.count)]
                    let placeholders = Array(
                        repeating: "(" + Array(repeating: "?", count: table.columns.count).joined(separator: ", ") + ")",
                        count: batch.count
                    ).joined(separator: ", ")
                    try db.execute(
                        "INSERT INTO \(table.name) (\(names))\(overriding) VALUES \(placeholders)",
                        batch.flatMap { $0 as [any SQLiteBindable] })
                    start += batch.count
                }
            }
            if tables.contains(where: { $0.name == "security_log" && !$0.rows.isEmpty }) {
                try db.execute(
                    "SELECT setval(pg_get_serial_sequence('security_log', 'id'), (SELECT max(id) FROM security_log))", [])
            }
            try db.execute("UPDATE event_sequence SET value = ? WHERE id = 1", [sequence])
            var counts: [String: Int] = [:]
            for table in AccountSchema.tables {
                counts[table] = try db.queryFirst("SELECT count(*) AS n FROM \(table)", []) { try $0.int("n") } ?? 0
            }
            return counts
        }
    }
}
