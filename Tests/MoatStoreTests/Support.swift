import Dispatch
import Foundation
import Logging
import MoatCore
import MoatStore
import XCTest

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("moat-store-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String = "moat.db") -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// An error a test body throws on purpose.
struct IntentionalError: Error, Equatable {
    var tag: String = "intentional"
}

/// A one-shot gate a store thread blocks on until the test opens it (30 s at most,
/// so a failing test never hangs the suite).
final class Gate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)

    func open() { semaphore.signal() }

    func wait() { _ = semaphore.wait(timeout: .now() + 30) }
}

/// The schema most tests use.
let testMigrations = [
    Migration(
        version: 1, name: "create_items",
        sql: """
            CREATE TABLE items (
                id INTEGER PRIMARY KEY,
                tenant_id INTEGER NOT NULL,
                name TEXT NOT NULL,
                UNIQUE (tenant_id, name)
            );
            """)
]

/// Opens a database on a new file with `testMigrations` (or the given ones).
func openTestDatabase(
    _ directory: TemporaryDirectory, migrations: [Migration] = testMigrations,
    synchronous: SynchronousMode = .full, readerCount: Int = 4, maxBatchSize: Int = 128
) async throws -> Database {
    try await Database.open(
        configuration: StoreConfiguration(
            path: directory.path(), synchronous: synchronous, readerCount: readerCount, maxBatchSize: maxBatchSize),
        migrations: migrations, logger: testLogger)
}

/// Warnings and errors only: the store's info logs would drown the test output.
let testLogger: Logger = {
    var logger = Logger(label: "moat.store.test")
    logger.logLevel = .warning
    return logger
}()

/// `SELECT count(*)` of a table, through a reader.
func count(_ table: String, in database: Database) async throws -> Int {
    try await database.read { connection in
        try connection.queryFirst("SELECT count(*) FROM \(table)") { try $0.int(at: 0) } ?? -1
    }
}

/// Starts a write whose body blocks the writer thread until the gate opens,
/// and returns once the body is running. `body` runs first, inside the write.
func startBlockingWrite(
    _ database: Database, _ body: @escaping @Sendable (Transaction) throws -> Void = { _ in }
) async -> (task: Task<Void, any Error>, gate: Gate) {
    let gate = Gate()
    let (started, continuation) = AsyncStream<Void>.makeStream()
    let task = Task {
        try await database.write { transaction in
            try body(transaction)
            continuation.yield()
            gate.wait()
        }
    }
    for await _ in started { break }
    return (task, gate)
}

/// Waits until `count` writes are queued behind the writer (a blocked one
/// holds it), failing after 20 s.
func waitForQueuedWrites(
    _ database: Database, _ count: Int, _ what: String, file: StaticString = #filePath, line: UInt = #line
) async {
    let queued = await database.untilQueuedWrites(count)
    XCTAssertTrue(queued, "timed out waiting for: \(what)", file: file, line: line)
    XCTAssertEqual(database.metrics.queuedWrites, count, what, file: file, line: line)
}

/// Asserts that `body` throws a `StoreError` with `reason`; returns it.
@discardableResult
func assertStoreError<T>(
    _ reason: StoreError.Reason, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async -> StoreError? {
    do {
        _ = try await body()
        XCTFail("expected \(reason), but nothing was thrown", file: file, line: line)
        return nil
    } catch let error as StoreError {
        XCTAssertEqual(error.reason, reason, "got \(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("expected \(reason), got \(error)", file: file, line: line)
        return nil
    }
}

/// The reason of the `StoreError` that `body` throws, or nil if it throws none.
func storeErrorReason(_ body: () throws -> Any) -> StoreError.Reason? {
    do {
        _ = try body()
        return nil
    } catch {
        return (error as? StoreError)?.reason
    }
}

// MARK: - PostgreSQL

/// The PostgreSQL server the store tests also run on, from
/// `MOAT_TEST_POSTGRES_URL` (`scripts/test` starts a throwaway cluster and
/// sets it); nil when unset, and the PostgreSQL runs are skipped.
let testPostgresURL: String? = {
    guard let url = ProcessInfo.processInfo.environment["MOAT_TEST_POSTGRES_URL"], !url.isEmpty else { return nil }
    return url
}()

/// Why PostgreSQL runs are skipped, for XCTSkip and logs.
let postgresSkipMessage =
    "MOAT_TEST_POSTGRES_URL is not set: the PostgreSQL store tests are skipped (scripts/test starts a throwaway cluster and sets it)"

/// A fresh, empty schema on the test server, so each test starts from
/// nothing (the store's tables go there through `search_path`).
struct PostgresTestSchema {
    /// The schema's name.
    let name: String
    /// The server's URL with `search_path` set to the schema.
    let url: String

    /// Creates the schema. Throws XCTSkip when no server is configured.
    static func create() async throws -> PostgresTestSchema {
        guard let base = testPostgresURL else { throw XCTSkip(postgresSkipMessage) }
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let admin = try await PostgresDatabase.open(
            configuration: PostgresConfiguration(url: base, connections: 1), migrations: nil, logger: testLogger)
        try await admin.write { db in try db.execute("CREATE SCHEMA \(name)", []) }
        await admin.close()
        let separator = base.contains("?") ? "&" : "?"
        return PostgresTestSchema(name: name, url: base + separator + "options=-csearch_path%3D\(name)")
    }

    /// A configuration for the schema.
    func configuration(connections: Int = 4) -> PostgresConfiguration {
        PostgresConfiguration(url: url, connections: connections)
    }

    /// Opens an account store on the schema.
    func openStore(encoder: any EventEncoder, connections: Int = 4) async throws -> PostgresAccountStore {
        try await PostgresAccountStore.open(
            configuration: configuration(connections: connections), encoder: encoder, logger: testLogger)
    }

    /// Drops the schema and everything in it.
    func drop() async {
        guard let base = testPostgresURL,
            let admin = try? await PostgresDatabase.open(
                configuration: PostgresConfiguration(url: base, connections: 1), migrations: nil, logger: testLogger)
        else { return }
        _ = try? await admin.write { db in try db.execute("DROP SCHEMA \(name) CASCADE", []) }
        await admin.close()
    }
}

/// An account store a test can close, on either SQL backend.
protocol ClosableAccountStore: AccountStore {
    func close() async
    func meta(_ key: String) async throws -> [UInt8]?
    func setMeta(_ key: String, _ value: [UInt8]) async throws
}

extension SQLiteAccountStore: ClosableAccountStore {}
extension PostgresAccountStore: ClosableAccountStore {}

/// Runs `body` on a fresh SQLite store, then, when MOAT_TEST_POSTGRES_URL is
/// set, on a fresh PostgreSQL store (its own schema): one test, both SQL
/// backends. `body` gets the store and the backend's name.
func onEachSQLStore(
    encoder: any EventEncoder, readerCount: Int = 2,
    _ body: (any ClosableAccountStore, String) async throws -> Void
) async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let sqlite = try await SQLiteAccountStore.open(
        path: directory.path(), readerCount: readerCount, encoder: encoder, logger: testLogger)
    do {
        try await body(sqlite, "sqlite")
    } catch {
        await sqlite.close()
        throw error
    }
    await sqlite.close()
    guard testPostgresURL != nil else {
        print("note: \(postgresSkipMessage)")
        return
    }
    let schema = try await PostgresTestSchema.create()
    let postgres = try await schema.openStore(encoder: encoder)
    print("the same test on postgres (schema \(schema.name))")
    do {
        try await body(postgres, "postgres")
    } catch {
        await postgres.close()
        await schema.drop()
        throw error
    }
    await postgres.close()
    await schema.drop()
}
