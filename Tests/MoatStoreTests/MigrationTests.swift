import Foundation
import MoatStore
import XCTest

private let v1 = Migration(
    version: 1, name: "create_users",
    sql: "CREATE TABLE users (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, email TEXT NOT NULL);")
private let v2 = Migration(
    version: 2, name: "users_email_unique",
    sql: "CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, email);")
private let v3 = Migration(
    version: 3, name: "create_teams",
    sql: """
        CREATE TABLE teams (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL);
        INSERT INTO teams (tenant_id, name) VALUES (1, 'founders');
        """)
/// Creates a table, then fails: the table must not survive.
private let v3Broken = Migration(
    version: 3, name: "create_teams",
    sql: """
        CREATE TABLE teams (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL);
        INSERT INTO no_such_table VALUES (1);
        """)

private func tables(in database: Database) async throws -> Set<String> {
    Set(
        try await database.read { connection in
            try connection.query("SELECT name FROM sqlite_master WHERE type = 'table'") { try $0.string("name") }
        })
}

private func recorded(in database: Database) async throws -> [Int] {
    try await database.read { connection in
        try connection.query("SELECT version FROM schema_migrations ORDER BY version") { try $0.int("version") }
    }
}

/// Migrations: applied in order at start-up, each in its own transaction,
/// recorded in `schema_migrations`, refused when the database is newer.
final class MigrationTests: XCTestCase {
    /// Apply from an empty database, in order, recorded with names and times.
    func testFromEmpty() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Given out of order on purpose: applied by version.
        let database = try await openTestDatabase(directory, migrations: [v3, v1, v2])
        XCTAssertEqual(
            database.migrationReport, MigrationReport(previousVersion: 0, currentVersion: 3, applied: [1, 2, 3]))
        let rows = try await database.read { connection in
            try connection.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version") {
                "\(try $0.int("version")) \(try $0.string("name")) \(try $0.string("applied_at").hasSuffix("Z"))"
            }
        }
        XCTAssertEqual(rows, ["1 create_users true", "2 users_email_unique true", "3 create_teams true"])
        let names = try await tables(in: database)
        XCTAssertTrue(names.isSuperset(of: ["users", "teams", "schema_migrations"]), "\(names)")
        let teams = try await count("teams", in: database)
        XCTAssertEqual(teams, 1)
        await database.close()
    }

    /// Reopening applies nothing again.
    func testReopenIsIdempotent() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = try await openTestDatabase(directory, migrations: [v1, v2, v3])
        XCTAssertEqual(first.migrationReport.applied, [1, 2, 3])
        await first.close()

        let second = try await openTestDatabase(directory, migrations: [v1, v2, v3])
        XCTAssertEqual(second.migrationReport, MigrationReport(previousVersion: 3, currentVersion: 3, applied: []))
        // v3's INSERT did not run twice.
        let teams = try await count("teams", in: second)
        XCTAssertEqual(teams, 1)
        let versions = try await recorded(in: second)
        XCTAssertEqual(versions, [1, 2, 3])
        await second.close()
    }

    /// A later build applies only the new migrations.
    func testUpgrade() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        await (try await openTestDatabase(directory, migrations: [v1])).close()
        let database = try await openTestDatabase(directory, migrations: [v1, v2, v3])
        XCTAssertEqual(database.migrationReport, MigrationReport(previousVersion: 1, currentVersion: 3, applied: [2, 3]))
        await database.close()
    }

    /// A database newer than the code refuses to start, and is left untouched.
    func testNewerSchemaRefuses() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        await (try await openTestDatabase(directory, migrations: [v1, v2, v3])).close()

        let error = await assertStoreError(.schemaTooNew) {
            try await openTestDatabase(directory, migrations: [v1, v2])
        }
        XCTAssertEqual(error?.message.contains("version 3"), true, "\(String(describing: error))")
        await assertStoreError(.schemaTooNew) { try await openTestDatabase(directory, migrations: []) }

        let database = try await openTestDatabase(directory, migrations: [v1, v2, v3])
        XCTAssertEqual(database.migrationReport.applied, [])
        await database.close()
    }

    /// A failing migration leaves the previous version intact.
    func testFailingMigrationRollsBack() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        await (try await openTestDatabase(directory, migrations: [v1, v2])).close()

        let error = await assertStoreError(.migrationFailed) {
            try await openTestDatabase(directory, migrations: [v1, v2, v3Broken])
        }
        XCTAssertEqual(error?.message.contains("create_teams"), true)
        XCTAssertEqual(error?.message.contains("no_such_table"), true)

        let database = try await openTestDatabase(directory, migrations: [v1, v2])
        XCTAssertEqual(database.migrationReport, MigrationReport(previousVersion: 2, currentVersion: 2, applied: []))
        let versions = try await recorded(in: database)
        XCTAssertEqual(versions, [1, 2])
        // The table the broken migration created before failing is gone.
        let names = try await tables(in: database)
        XCTAssertFalse(names.contains("teams"))
        await database.close()

        // The fixed migration then applies cleanly.
        let fixed = try await openTestDatabase(directory, migrations: [v1, v2, v3])
        XCTAssertEqual(fixed.migrationReport.applied, [3])
        await fixed.close()
    }

    /// A failure midway through a fresh start keeps the earlier migrations.
    func testFailureMidwayKeepsEarlierOnes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        await assertStoreError(.migrationFailed) {
            try await openTestDatabase(directory, migrations: [v1, v2, v3Broken])
        }
        let database = try await openTestDatabase(directory, migrations: [v1, v2])
        XCTAssertEqual(database.migrationReport, MigrationReport(previousVersion: 2, currentVersion: 2, applied: []))
        await database.close()
    }

    /// A renamed, unknown or skipped migration is refused.
    func testMismatches() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        await (try await openTestDatabase(directory, migrations: [v1, v3])).close()

        var renamed = v1
        renamed.name = "create_people"
        await assertStoreError(.migrationMismatch) { try await openTestDatabase(directory, migrations: [renamed, v3]) }
        // v2 slipped in below the database's version 3.
        await assertStoreError(.migrationMismatch) { try await openTestDatabase(directory, migrations: [v1, v2, v3]) }
        // v1 removed from the code.
        await assertStoreError(.migrationMismatch) { try await openTestDatabase(directory, migrations: [v3]) }
    }

    /// An invalid migration list is refused before anything is opened.
    func testInvalidList() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        await assertStoreError(.invalidConfiguration) { try await openTestDatabase(directory, migrations: [v1, v1]) }
        await assertStoreError(.invalidConfiguration) {
            try await openTestDatabase(directory, migrations: [Migration(version: 0, name: "zero", sql: "")])
        }
        await assertStoreError(.invalidConfiguration) {
            try await openTestDatabase(directory, migrations: [Migration(version: 1, name: "", sql: "")])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.path()))
    }
}
