import Logging

/// One versioned schema change, applied once at start-up.
///
/// Versions are positive and unique; they are applied in ascending order,
/// each in its own `BEGIN IMMEDIATE … COMMIT` together with its row in
/// `schema_migrations`, so a failing migration leaves the database exactly at
/// the previous version. `sql` may hold several statements but must not open
/// or end transactions itself; foreign keys stay ON (`PRAGMA foreign_keys`
/// is a no-op inside a transaction). A migration, once released, is never edited:
/// a change is a new migration.
public struct Migration: Sendable, Hashable {
    /// The schema version this migration brings the database to.
    public var version: Int
    /// A short name, recorded and checked on every start (e.g. `create_users`).
    public var name: String
    /// The SQL script.
    public var sql: String

    /// Creates a migration.
    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// What ``Database/open(configuration:migrations:logger:)`` did to the schema.
public struct MigrationReport: Sendable, Hashable {
    /// The schema version found at start-up (0 for a new database).
    public var previousVersion: Int
    /// The schema version after start-up.
    public var currentVersion: Int
    /// The versions applied at this start-up, in order (empty on a plain reopen).
    public var applied: [Int]

    /// Creates a report.
    public init(previousVersion: Int, currentVersion: Int, applied: [Int]) {
        self.previousVersion = previousVersion
        self.currentVersion = currentVersion
        self.applied = applied
    }
}

/// Applies migrations on the writer connection.
///
/// Versions are recorded in a `schema_migrations (version, name, applied_at)`
/// table rather than in `PRAGMA user_version`: the table keeps which
/// migrations ran, under which names and when (useful to operators), lets a
/// start-up detect a renamed, removed or out-of-order migration, and is a
/// plain table that the planned PostgreSQL store can mirror one to one.
enum Migrator {
    static let tableSQL = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )
        """

    static func validate(_ migrations: [Migration]) throws -> [Migration] {
        let sorted = migrations.sorted { $0.version < $1.version }
        var previous = 0
        for migration in sorted {
            guard migration.version > 0 else {
                throw StoreError(.invalidConfiguration, message: "migration versions must be positive, got \(migration.version)")
            }
            guard migration.version != previous else {
                throw StoreError(.invalidConfiguration, message: "migration version \(migration.version) appears twice")
            }
            guard !migration.name.isEmpty else {
                throw StoreError(.invalidConfiguration, message: "migration \(migration.version) has no name")
            }
            previous = migration.version
        }
        return sorted
    }

    static func migrate(
        _ connection: SQLiteConnection, migrations: [Migration], logger: Logger
    ) throws -> MigrationReport {
        let known = try validate(migrations)
        try connection.execute(tableSQL)
        let recorded = try connection.query("SELECT version, name FROM schema_migrations ORDER BY version") {
            (version: try $0.int("version"), name: try $0.string("name"))
        }
        let databaseVersion = recorded.last?.version ?? 0
        let codeVersion = known.last?.version ?? 0
        guard databaseVersion <= codeVersion else {
            throw StoreError(
                .schemaTooNew,
                message: "database schema is at version \(databaseVersion), newer than this build knows (\(codeVersion)); refusing to start")
        }
        let byVersion = Dictionary(known.map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
        for (version, name) in recorded {
            guard let migration = byVersion[version] else {
                throw StoreError(
                    .migrationMismatch, message: "database has migration \(version) (\(name)) that this build does not know")
            }
            guard migration.name == name else {
                throw StoreError(
                    .migrationMismatch,
                    message: "migration \(version) is named \(name) in the database but \(migration.name) in this build")
            }
        }
        let recordedVersions = Set(recorded.map(\.version))
        if let skipped = known.first(where: { $0.version < databaseVersion && !recordedVersions.contains($0.version) }) {
            throw StoreError(
                .migrationMismatch,
                message: "migration \(skipped.version) (\(skipped.name)) is below the database's version \(databaseVersion) but was never applied")
        }

        var applied: [Int] = []
        for migration in known where migration.version > databaseVersion {
            do {
                try connection.execute("BEGIN IMMEDIATE")
                try connection.execute(migration.sql)
                try connection.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    [migration.version, migration.name])
                try connection.execute("COMMIT")
            } catch {
                connection.resetActiveStatements()
                if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
                let underlying = error as? StoreError
                logger.error(
                    "migration failed; schema left at previous version",
                    metadata: [
                        "version": "\(migration.version)", "name": "\(migration.name)",
                        "previous_version": "\(applied.last ?? databaseVersion)", "error": "\(error)",
                    ])
                throw StoreError(
                    .migrationFailed, code: underlying?.code ?? 0,
                    message: "migration \(migration.version) (\(migration.name)) failed and was rolled back: \(underlying?.message ?? "\(error)")")
            }
            applied.append(migration.version)
            logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
        }
        return MigrationReport(previousVersion: databaseVersion, currentVersion: applied.last ?? databaseVersion, applied: applied)
    }
}
