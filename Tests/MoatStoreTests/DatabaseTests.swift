import Foundation
import MoatStore
import Synchronization
import XCTest

private func insert(_ database: Database, tenant: Int64 = 1, _ name: String) async throws -> Int64 {
    try await database.write { tx in
        try tx.execute("INSERT INTO items (tenant_id, name) VALUES (?, ?)", [tenant, name])
        return tx.lastInsertRowID
    }
}

/// Numbers the calls that arrive, from 1.
private final class Arrivals: Sendable {
    private let count = Mutex(0)

    func next() -> Int {
        count.withLock { count in
            count += 1
            return count
        }
    }
}

private func names(in database: Database) async throws -> [String] {
    try await database.read { connection in
        try connection.query("SELECT name FROM items ORDER BY name") { try $0.string("name") }
    }
}

/// The writer (group commit, savepoints, failures), the readers, threads, close.
final class DatabaseTests: XCTestCase {
    /// Group commit: 200 concurrent writes, all committed, in far fewer commits.
    func testGroupCommit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        let writers = 200
        let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
            for number in 0..<writers {
                group.addTask { try await insert(database, "item-\(number)") }
            }
            return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
        }
        XCTAssertEqual(ids.count, writers)
        let rows = try await count("items", in: database)
        XCTAssertEqual(rows, writers)
        let metrics = database.metrics
        XCTAssertEqual(metrics.writesCommitted, writers)
        XCTAssertEqual(metrics.writesFailed, 0)
        XCTAssertLessThan(metrics.commits, writers)
        XCTAssertGreaterThan(metrics.largestBatch, 1)
        print(
            "group commit: \(writers) concurrent writes in \(metrics.commits) commits "
                + "(\(String(format: "%.1f", metrics.writesPerCommit)) writes/commit, largest batch \(metrics.largestBatch))")
        await database.close()
    }

    /// A batch is bounded by maxBatchSize.
    func testBatchBound() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, maxBatchSize: 5)
        let blocker = await startBlockingWrite(database)
        let tasks = (0..<20).map { number in Task { try await insert(database, "item-\(number)") } }
        await waitForQueuedWrites(database, 20, "20 writes queued")
        blocker.gate.open()
        try await blocker.task.value
        for task in tasks { _ = try await task.value }
        let metrics = database.metrics
        XCTAssertEqual(metrics.largestBatch, 5)
        XCTAssertEqual(metrics.commits, 1 + 4)
        XCTAssertEqual(metrics.writesCommitted, 21)
        await database.close()
    }

    /// One failing body in a batch is rolled back alone; the others commit.
    func testFailingBodyIsolated() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        let blocker = await startBlockingWrite(database)
        let first = Task { try await insert(database, "first") }
        await waitForQueuedWrites(database, 1, "first queued")
        let failing = Task {
            try await database.write { tx in
                try tx.execute("INSERT INTO items (tenant_id, name) VALUES (1, 'doomed')", [])
                try tx.execute("UPDATE items SET name = 'renamed' WHERE name = 'first'", [])
                throw IntentionalError()
            }
        }
        await waitForQueuedWrites(database, 2, "failing queued")
        let last = Task { try await insert(database, "last") }
        await waitForQueuedWrites(database, 3, "last queued")
        blocker.gate.open()
        try await blocker.task.value

        _ = try await first.value
        _ = try await last.value
        do {
            try await failing.value
            XCTFail("the failing body's caller must get its error")
        } catch {
            XCTAssertEqual(error as? IntentionalError, IntentionalError())
        }
        let rows = try await names(in: database)
        XCTAssertEqual(rows, ["first", "last"])
        let metrics = database.metrics
        XCTAssertEqual(metrics.commits, 2)  // the blocker, then one batch of three
        XCTAssertEqual(metrics.largestBatch, 3)
        XCTAssertEqual(metrics.writesCommitted, 3)
        XCTAssertEqual(metrics.writesFailed, 1)
        await database.close()
    }

    /// A failing COMMIT fails every caller of the batch.
    func testCommitFailureFailsBatch() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let schema = Migration(
            version: 1, name: "deferred_fk",
            sql: """
                CREATE TABLE parents (id INTEGER PRIMARY KEY);
                CREATE TABLE children (
                    id INTEGER PRIMARY KEY,
                    parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
                );
                """)
        let database = try await openTestDatabase(directory, migrations: [schema])
        let blocker = await startBlockingWrite(database)
        let tasks = [
            Task { try await database.write { try $0.execute("INSERT INTO parents (id) VALUES (1)", []) } },
            // Checked only at COMMIT: the whole batch's COMMIT fails.
            Task { try await database.write { try $0.execute("INSERT INTO children (parent_id) VALUES (99)", []) } },
            Task { try await database.write { try $0.execute("INSERT INTO parents (id) VALUES (2)", []) } },
        ]
        await waitForQueuedWrites(database, 3, "batch queued")
        blocker.gate.open()
        try await blocker.task.value
        for task in tasks {
            await assertStoreError(.constraintForeignKey) { try await task.value }
        }
        var parents = try await count("parents", in: database)
        XCTAssertEqual(parents, 0)
        let children = try await count("children", in: database)
        XCTAssertEqual(children, 0)
        XCTAssertEqual(database.metrics.failedBatches, 1)
        XCTAssertEqual(database.metrics.writesFailed, 3)
        // The writer carries on.
        try await database.write { try $0.execute("INSERT INTO parents (id) VALUES (3)", []) }
        parents = try await count("parents", in: database)
        XCTAssertEqual(parents, 1)
        await database.close()
    }

    /// A body that ends the transaction aborts the writes before it; later ones run anew.
    func testAbortedTransaction() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        let blocker = await startBlockingWrite(database)
        let before = Task { try await insert(database, "before") }
        await waitForQueuedWrites(database, 1, "before queued")
        let rogue = Task { try await database.write { try $0.execute("ROLLBACK") } }
        await waitForQueuedWrites(database, 2, "rogue queued")
        let after = Task { try await insert(database, "after") }
        await waitForQueuedWrites(database, 3, "after queued")
        blocker.gate.open()
        try await blocker.task.value
        await assertStoreError(.transactionAborted) { try await before.value }
        await assertStoreError(.transactionAborted) { try await rogue.value }
        _ = try await after.value
        let rows = try await names(in: database)
        XCTAssertEqual(rows, ["after"])
        await database.close()
    }

    /// Constraint violations carry distinguishable reasons.
    func testConstraintReasons() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let schema = Migration(
            version: 1, name: "constraints",
            sql: """
                CREATE TABLE tenants (id INTEGER PRIMARY KEY);
                CREATE TABLE users (
                    id INTEGER PRIMARY KEY,
                    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
                    email TEXT NOT NULL,
                    age INTEGER CHECK (age >= 0),
                    UNIQUE (tenant_id, email)
                );
                INSERT INTO tenants (id) VALUES (1);
                """)
        let database = try await openTestDatabase(directory, migrations: [schema])
        let insertUser = "INSERT INTO users (id, tenant_id, email, age) VALUES (?, ?, ?, ?)"
        try await database.write { try $0.execute(insertUser, [1, 1, "a@example.com", 30]) }

        let unique = await assertStoreError(.constraintUnique) {
            try await database.write { try $0.execute(insertUser, [2, 1, "a@example.com", 30]) }
        }
        XCTAssertEqual(unique?.isUniqueViolation, true)
        XCTAssertEqual(unique?.isConstraintViolation, true)
        XCTAssertEqual(unique?.code, 2067)  // SQLITE_CONSTRAINT_UNIQUE
        await assertStoreError(.constraintUnique) {  // PRIMARY KEY
            try await database.write { try $0.execute(insertUser, [1, 1, "b@example.com", 30]) }
        }
        let foreignKey = await assertStoreError(.constraintForeignKey) {
            try await database.write { try $0.execute(insertUser, [3, 2, "c@example.com", 30]) }
        }
        XCTAssertEqual(foreignKey?.isUniqueViolation, false)
        XCTAssertEqual(foreignKey?.isConstraintViolation, true)
        await assertStoreError(.constraintNotNull) {
            try await database.write { try $0.execute(insertUser, [4, 1, String?.none, 30]) }
        }
        await assertStoreError(.constraintCheck) {
            try await database.write { try $0.execute(insertUser, [5, 1, "e@example.com", -1]) }
        }
        let users = try await count("users", in: database)
        XCTAssertEqual(users, 1)
        await database.close()
    }

    /// Readers see committed data only.
    func testReadersSeeCommittedOnly() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        _ = try await insert(database, "committed")
        let pending = await startBlockingWrite(database) { tx in
            try tx.execute("INSERT INTO items (tenant_id, name) VALUES (1, 'uncommitted')", [])
            try tx.execute("DELETE FROM items WHERE name = 'committed'", [])
        }
        // The writer holds an open transaction with both changes applied.
        var rows = try await names(in: database)
        XCTAssertEqual(rows, ["committed"])
        pending.gate.open()
        try await pending.task.value
        rows = try await names(in: database)
        XCTAssertEqual(rows, ["uncommitted"])
        await database.close()
    }

    /// One read body sees one snapshot, even while a write commits.
    func testReadSnapshot() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        _ = try await insert(database, "one")
        let gate = Gate()
        let (firstQueryDone, signal) = AsyncStream<Void>.makeStream()
        let reading = Task {
            try await database.read { connection in
                let before = try connection.queryFirst("SELECT count(*) FROM items") { try $0.int(at: 0) }
                signal.yield()
                gate.wait()  // meanwhile a write commits
                let after = try connection.queryFirst("SELECT count(*) FROM items") { try $0.int(at: 0) }
                return [before, after]
            }
        }
        for await _ in firstQueryDone { break }
        _ = try await insert(database, "two")
        let fresh = try await count("items", in: database)
        XCTAssertEqual(fresh, 2)  // a new read sees the commit
        gate.open()
        let snapshot = try await reading.value
        XCTAssertEqual(snapshot, [1, 1])  // the open read kept its snapshot
        await database.close()
    }

    /// Reader connections are read-only.
    func testReadersAreReadOnly() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        await assertStoreError(.readOnly) {
            try await database.read { try $0.execute("INSERT INTO items (tenant_id, name) VALUES (1, 'x')", []) }
        }
        let rows = try await count("items", in: database)
        XCTAssertEqual(rows, 0)
        await database.close()
    }

    /// A body closing its lent connection does not break the database.
    func testLentConnectionsStayOpen() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, readerCount: 1)
        try await database.read { connection in connection.close() }
        try await database.write { tx in try tx.activeConnection().close() }
        _ = try await insert(database, "still-works")
        let rows = try await count("items", in: database)
        XCTAssertEqual(rows, 1)
        await database.close()
    }

    /// Bodies run on the store's own threads, not the cooperative pool.
    func testDedicatedThreads() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, readerCount: 3)
        let writerThread = try await database.write { _ in Thread.current.name ?? "" }
        XCTAssertEqual(writerThread, Database.writerThreadName)
        #if os(Linux)
            // The kernel's own name for the thread, not just Foundation's.
            let kernelName = try await database.write { _ in
                (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            }
            XCTAssertEqual(kernelName, Database.writerThreadName + "\n")
        #endif
        // The first three reads wait for each other inside their bodies: a
        // reader takes one job at a time, so they run on three threads at once.
        let arrived = Arrivals()
        let allThree = DispatchSemaphore(value: 0)
        let readerThreads = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<30 {
                group.addTask {
                    try await database.read { _ in
                        let order = arrived.next()
                        if order == 3 { for _ in 0..<3 { allThree.signal() } }
                        if order <= 3 { XCTAssertEqual(allThree.wait(timeout: .now() + 30), .success) }
                        return Thread.current.name ?? ""
                    }
                }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        XCTAssertEqual(readerThreads, ["moat.db.read.0", "moat.db.read.1", "moat.db.read.2"])
        await database.close()
    }

    /// `read(_:completion:)`: the body and the completion run on a reader
    /// thread inside one read transaction; a throwing body's error reaches
    /// the completion; after close, CLOSED.
    func testReadWithCompletionRunsOnTheReaderThread() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, readerCount: 2)
        _ = try await insert(database, "one")
        func completedRead<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async
            -> (Result<T, any Error>, String)
        {
            await withCheckedContinuation { continuation in
                database.read(body) { result in continuation.resume(returning: (result, Thread.current.name ?? "")) }
            }
        }
        let (counted, thread) = await completedRead { connection in
            (try connection.queryFirst("SELECT count(*) FROM items") { try $0.int(at: 0) }, connection.isAutocommit)
        }
        let (rows, autocommit) = try counted.get()
        XCTAssertEqual(rows, 1)
        XCTAssertFalse(autocommit, "the body ran outside a read transaction")
        XCTAssertTrue(thread.hasPrefix(Database.readerThreadNamePrefix), thread)
        let (failed, _) = await completedRead { connection in
            try connection.queryFirst("SELECT nope FROM items") { try $0.int(at: 0) }
        }
        XCTAssertThrowsError(try failed.get())
        // The reader is still usable after a failed body.
        let (again, _) = await completedRead { connection in try connection.queryFirst("SELECT 7") { try $0.int(at: 0) } }
        XCTAssertEqual(try again.get(), 7)
        await database.close()
        let (closed, _) = await completedRead { _ in 1 }
        XCTAssertEqual((closed.failure as? StoreError)?.reason, .closed)
    }

    /// Pragmas follow the configuration.
    func testPragmas() async throws {
        for mode in SynchronousMode.allCases {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let database = try await openTestDatabase(directory, synchronous: mode)
            let values = try await database.write { tx in
                try ["journal_mode", "synchronous", "foreign_keys"].map { pragma in
                    try tx.queryFirst("PRAGMA \(pragma)") { try $0.value(at: 0) }
                }
            }
            XCTAssertEqual(values, [.text("wal"), .integer(mode == .full ? 2 : 1), .integer(1)], "\(mode)")
            // Readers map the file (point lookups without a pread per page); the writer does not.
            let readerMap = try await database.read { try $0.queryFirst("PRAGMA mmap_size") { try $0.int(at: 0) } }
            XCTAssertEqual(readerMap, StoreConfiguration(path: "x").readerMmapSize, "\(mode)")
            let writerMap = try await database.write { try $0.queryFirst("PRAGMA mmap_size") { try $0.int(at: 0) } }
            XCTAssertEqual(writerMap, 0, "\(mode)")
            await database.close()
        }
    }

    /// Close keeps data, drains queued writes, and later calls fail with CLOSED.
    func testCloseAndReopen() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory)
        _ = try await insert(database, "kept")
        let blocker = await startBlockingWrite(database)
        let queued = (0..<10).map { number in Task { try await insert(database, "queued-\(number)") } }
        await waitForQueuedWrites(database, 10, "writes queued")
        let closing = Task { await database.close() }
        // Once close() has begun, reads and new writes are refused while the
        // queued ones are still waiting for the writer. (A wait for an 11th
        // queued write ends when the close begins.)
        let eleventhQueued = await database.untilQueuedWrites(11)
        XCTAssertFalse(eleventhQueued, "no 11th write was queued")
        await assertStoreError(.closed) { try await count("items", in: database) }
        await assertStoreError(.closed) { try await insert(database, "refused") }
        XCTAssertEqual(database.metrics.queuedWrites, 10)
        blocker.gate.open()
        try await blocker.task.value
        for task in queued { _ = try await task.value }  // drained and committed
        await closing.value

        await assertStoreError(.closed) { try await insert(database, "late") }
        await assertStoreError(.closed) { try await count("items", in: database) }
        await database.close()  // idempotent

        let reopened = try await openTestDatabase(directory)
        XCTAssertEqual(reopened.migrationReport.applied, [])
        let rows = try await count("items", in: reopened)
        XCTAssertEqual(rows, 11)
        let first = try await names(in: reopened).first
        XCTAssertEqual(first, "kept")
        await reopened.close()
    }

    /// An invalid configuration or unopenable path is refused.
    func testBadConfiguration() async throws {
        await assertStoreError(.invalidConfiguration) {
            try await Database.open(configuration: StoreConfiguration(path: ":memory:"), logger: testLogger)
        }
        await assertStoreError(.invalidConfiguration) {
            try await Database.open(configuration: StoreConfiguration(path: "/tmp/x.db", readerCount: 0), logger: testLogger)
        }
        await assertStoreError(.cantOpen) {
            try await Database.open(configuration: StoreConfiguration(path: "/nonexistent-dir/moat.db"), logger: testLogger)
        }
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Data("this is not a database, just some text long enough to be read as a header".utf8)
            .write(to: URL(fileURLWithPath: directory.path()))
        await assertStoreError(.corrupt) { try await openTestDatabase(directory) }
    }
}

extension Result {
    /// The error, if it failed.
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
