import Foundation
public import Logging
import Synchronization

/// The SQLite database: one writer with group commit and a pool of readers,
/// each connection on a dedicated thread of its own.
///
/// No SQLite call runs on the caller's thread, a NIO event loop or the Swift
/// cooperative pool: ``write(_:)`` and ``read(_:)`` suspend the calling task
/// while a store thread does the work (including the blocking fsync).
///
/// **Writes.** The writer thread takes every write queued while its previous
/// commit was in flight (at most ``StoreConfiguration/maxBatchSize``) and runs
/// them in one `BEGIN IMMEDIATE … COMMIT`, so one fsync covers the batch. Each
/// body runs in its own SAVEPOINT: a body that throws is rolled back alone and
/// its caller gets its error, while the others commit. Callers resume only
/// once the commit succeeded; if `BEGIN` or `COMMIT` fails, every caller in the
/// batch gets that error. If SQLite rolls back the whole transaction
/// mid-batch (disk full, I/O error, or a body ending the transaction itself),
/// the writes run so far fail with `TRANSACTION_ABORTED` and the rest of the
/// batch runs in a new transaction. Deferred constraints are checked at
/// `COMMIT` and so fail a whole batch: prefer immediate constraints.
///
/// **Reads.** Each ``read(_:)`` body runs on one reader connection inside a
/// read transaction: it sees one consistent snapshot of committed data.
///
/// Bodies must not keep the connection or transaction they are given, nor
/// change its pragmas.
///
/// **Cancellation.** A queued read or write runs to completion even if the
/// calling task is cancelled: a write the caller gave up on may still commit.
///
/// ```swift
/// let db = try await Database.open(configuration: .init(path: path), migrations: migrations)
/// try await db.write { tx in try tx.execute("INSERT INTO t (v) VALUES (?)", ["x"]) }
/// let values = try await db.read { connection in
///     try connection.query("SELECT v FROM t") { row in try row.string("v") }
/// }
/// await db.close()
/// ```
public final class Database: Sendable {
    /// The configuration the database was opened with.
    public let configuration: StoreConfiguration
    /// What the start-up migrations did.
    public let migrationReport: MigrationReport
    private let core: Core

    /// The name of the writer thread (as `top -H` and debuggers show it;
    /// Linux keeps 15 characters of a thread name).
    public static let writerThreadName = "moat.db.writer"
    /// The prefix of the reader threads' names, followed by their number.
    public static let readerThreadNamePrefix = "moat.db.read."

    private init(configuration: StoreConfiguration, migrationReport: MigrationReport, core: Core) {
        self.configuration = configuration
        self.migrationReport = migrationReport
        self.core = core
    }

    deinit {
        // Without close(), let the threads drain their queues and exit.
        core.shutDown()
    }

    /// Opens the database: starts the writer thread (which opens the writer
    /// connection and applies pending migrations, each in its own
    /// transaction), then the reader threads.
    ///
    /// Throws `INVALID_CONFIGURATION` for a bad configuration or migration
    /// list, `SCHEMA_TOO_NEW` if the database is at a version newer than the
    /// last migration given, `MIGRATION_MISMATCH` if the recorded migrations do
    /// not match the list, `MIGRATION_FAILED` if one failed (the database then
    /// stays at the last good version), or the SQLite error that stopped a
    /// connection from opening.
    public static func open(
        configuration: StoreConfiguration, migrations: [Migration] = [],
        logger: Logger = Logger(label: "moat.store")
    ) async throws -> Database {
        try configuration.validate()
        _ = try Migrator.validate(migrations)
        let core = Core(logger: logger)
        do {
            let report = try await withCheckedThrowingContinuation {
                (started: CheckedContinuation<MigrationReport, any Error>) in
                core.startThread(named: writerThreadName) {
                    runWriter(core: core, configuration: configuration, migrations: migrations, started: started)
                }
            }
            for number in 0..<configuration.readerCount {
                try await withCheckedThrowingContinuation { (started: CheckedContinuation<Void, any Error>) in
                    core.startThread(named: readerThreadNamePrefix + String(number)) {
                        runReader(core: core, configuration: configuration, started: started)
                    }
                }
            }
            logger.info(
                "database open",
                metadata: [
                    "path": "\(configuration.path)", "schema_version": "\(report.currentVersion)",
                    "migrations_applied": "\(report.applied.count)", "readers": "\(configuration.readerCount)",
                    "synchronous": "\(configuration.synchronous.rawValue)", "sqlite": "\(SQLiteConnection.libraryVersion)",
                ])
            return Database(configuration: configuration, migrationReport: report, core: core)
        } catch {
            core.shutDown()
            await core.exits.wait()
            throw error
        }
    }

    /// Runs `body` in the writer's next batch transaction and returns its
    /// result once the batch has committed (durably, with `synchronous=FULL`).
    ///
    /// If `body` throws, its changes alone are rolled back and the error is
    /// rethrown here. Keep bodies short and free of waiting: the writer runs
    /// them one after another. Throws `CLOSED` after ``close()``.
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = WriteJob(
                perform: { transaction in
                    do {
                        let value = try body(transaction)
                        return WriteOutcome(succeeded: true) { batchError in
                            if let batchError {
                                continuation.resume(throwing: batchError)
                            } else {
                                continuation.resume(returning: value)
                            }
                        }
                    } catch {
                        // The body's own error wins over any batch failure.
                        return WriteOutcome(succeeded: false) { _ in continuation.resume(throwing: error) }
                    }
                },
                fail: { error in continuation.resume(throwing: error) })
            if !core.writes.push(job) { continuation.resume(throwing: StoreError.closed()) }
        }
    }

    /// Runs `body` on the writer thread between two write batches, outside
    /// any transaction: nothing else writes while it runs, so it sees
    /// exactly the writes committed before it (backups). Writes queued
    /// meanwhile wait and commit after it. Throws `CLOSED` after ``close()``.
    public func withWriterConnection<T: Sendable>(
        _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = WriteJob(
                perform: { _ in WriteOutcome(succeeded: false) { _ in } },
                fail: { error in continuation.resume(throwing: error) },
                exclusive: { connection in continuation.resume(with: Result { try body(connection) }) })
            if !core.writes.push(job) { continuation.resume(throwing: StoreError.closed()) }
        }
    }

    /// Runs `body` on a reader connection inside one read transaction (one
    /// consistent snapshot of committed data) and returns its result. The
    /// connection is read-only and must not be kept. Throws `CLOSED` after
    /// ``close()``.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        let queued = ContinuousClock.now
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = ReadJob { connection in
                StoreInstruments.record(StoreInstruments.readWait, since: queued)
                continuation.resume(with: Self.runRead(connection, body))
            }
            if !core.reads.push(job) { continuation.resume(throwing: StoreError.closed()) }
        }
    }

    /// Runs `body` like ``read(_:)`` but hands the result to `completion` on
    /// the reader thread instead of resuming a task: no continuation, no
    /// executor hop. `completion` runs on the reader's thread, so it must be
    /// quick and must not block (hand the result on, e.g. to an event
    /// loop). Gets `CLOSED` after ``close()`` (then on the caller's thread).
    public func read<T: Sendable>(
        _ body: @escaping @Sendable (SQLiteConnection) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        let queued = ContinuousClock.now
        let job = ReadJob { connection in
            StoreInstruments.record(StoreInstruments.readWait, since: queued)
            completion(Self.runRead(connection, body))
        }
        if !core.reads.push(job) { completion(.failure(StoreError.closed())) }
    }

    /// Closes the database: refuses new reads and writes (they fail with
    /// `CLOSED`), lets the queued ones finish (queued writes are committed),
    /// then closes every connection and ends the threads. Idempotent.
    public func close() async {
        core.shutDown()
        await core.exits.wait()
    }

    /// Suspends until at least `count` writes wait in the queue (true), or
    /// ``close()`` begins or `timeout` passes (false). Tests use it to order
    /// writes behind a held one, and to know a close began, without polling
    /// ``metrics``.
    public func untilQueuedWrites(_ count: Int, timeout: Duration = .seconds(20)) async -> Bool {
        await core.writes.untilQueued(count, timeout: timeout)
    }

    /// A snapshot of the counters.
    public var metrics: StoreMetrics {
        var snapshot = core.counters.withLock { $0 }
        snapshot.queuedWrites = core.writes.count
        snapshot.queuedReads = core.reads.count
        return snapshot
    }

    // MARK: Threads

    private static func runWriter(
        core: Core, configuration: StoreConfiguration, migrations: [Migration],
        started: CheckedContinuation<MigrationReport, any Error>
    ) {
        let connection: SQLiteConnection
        do {
            connection = try SQLiteConnection(
                path: configuration.path, flags: .readWriteCreate, synchronous: configuration.synchronous,
                busyTimeout: configuration.busyTimeout, statementCacheCapacity: configuration.statementCacheCapacity)
        } catch {
            started.resume(throwing: error)
            return
        }
        connection.isManaged = true
        defer { connection.closeNow() }
        do {
            started.resume(returning: try Migrator.migrate(connection, migrations: migrations, logger: core.logger))
        } catch {
            started.resume(throwing: error)
            return
        }
        let writer = Writer(connection: connection, core: core)
        while let batch = core.writes.take(max: configuration.maxBatchSize) {
            writer.run(batch)
        }
        core.logger.debug("writer stopped", metadata: ["path": "\(configuration.path)"])
    }

    private static func runReader(
        core: Core, configuration: StoreConfiguration, started: CheckedContinuation<Void, any Error>
    ) {
        let connection: SQLiteConnection
        do {
            connection = try SQLiteConnection(
                path: configuration.path, flags: .readOnly, synchronous: configuration.synchronous,
                busyTimeout: configuration.busyTimeout, statementCacheCapacity: configuration.statementCacheCapacity)
        } catch {
            started.resume(throwing: error)
            return
        }
        connection.isManaged = true
        defer { connection.closeNow() }
        do {
            try connection.execute("PRAGMA mmap_size=\(configuration.readerMmapSize)")
        } catch {
            started.resume(throwing: error)
            return
        }
        started.resume()
        while let jobs = core.reads.take(max: 1) {
            for job in jobs { job.run(connection) }
            core.counters.withLock { $0.reads += jobs.count }
        }
    }

    private static func runRead<T>(
        _ connection: SQLiteConnection, _ body: (SQLiteConnection) throws -> T
    ) -> Result<T, any Error> {
        do {
            try connection.execute("BEGIN DEFERRED")
        } catch {
            return .failure(error)
        }
        let result = Result { try body(connection) }
        connection.resetActiveStatements()
        if !connection.isAutocommit {
            do {
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                if case .success = result { return .failure(error) }
            }
        }
        return result
    }
}

// MARK: - Internals

/// What the threads share with the `Database` object.
private final class Core: Sendable {
    let writes = WorkQueue<WriteJob>()
    let reads = WorkQueue<ReadJob>()
    let counters = Mutex(StoreMetrics())
    let exits = ExitLatch()
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Starts a dedicated thread running `body`, counted by ``exits``.
    func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
        exits.enter()
        let exits = self.exits
        let started = DispatchSemaphore(value: 0)
        let thread = Thread {
            // Name the OS thread from inside, once start() has returned: on
            // Linux, Foundation names only the calling thread, and only once
            // the Thread knows its pthread. Linux keeps 15 bytes of a name.
            started.wait()
            Thread.current.name = name
            body()
            exits.leave()
        }
        thread.name = name
        thread.start()
        started.signal()
    }

    /// Refuses new jobs; the threads drain their queues and exit.
    func shutDown() {
        // Reads first: a write-queue watcher woken by the close then finds
        // reads refused too.
        reads.close()
        writes.close()
    }
}

/// A read waiting for a reader thread.
private struct ReadJob: Sendable {
    let run: @Sendable (SQLiteConnection) -> Void
}

/// A write waiting for the writer thread.
private struct WriteJob: Sendable {
    /// Runs the body inside the batch; the outcome delivers the result once
    /// the batch's fate is known.
    let perform: @Sendable (Transaction) -> WriteOutcome
    /// Fails the caller without running the body.
    let fail: @Sendable (any Error) -> Void
    /// Set for ``Database/withWriterConnection(_:)``: runs alone, outside a
    /// transaction, instead of `perform`.
    var exclusive: (@Sendable (SQLiteConnection) -> Void)? = nil
}

/// A body that ran: did it succeed, and how to resume its caller given the
/// batch's error (nil once committed).
private struct WriteOutcome: Sendable {
    let succeeded: Bool
    let deliver: @Sendable (StoreError?) -> Void
}

/// The writer thread's group-commit loop.
private struct Writer {
    let connection: SQLiteConnection
    let core: Core
    static let savepoint = "moat_write_body"

    func run(_ batch: [WriteJob]) {
        var pending = batch[...]
        while let first = pending.first {
            if let exclusive = first.exclusive {
                exclusive(connection)
                pending = pending.dropFirst()
                continue
            }
            let end = pending.firstIndex { $0.exclusive != nil } ?? pending.endIndex
            var transaction = pending[..<end]
            while !transaction.isEmpty { transaction = runTransaction(transaction) }
            pending = pending[end...]
        }
    }

    /// Runs `jobs` in one transaction. Returns the jobs not yet run if the
    /// transaction was aborted midway (they go into a new transaction).
    private func runTransaction(_ jobs: ArraySlice<WriteJob>) -> ArraySlice<WriteJob> {
        let started = ContinuousClock.now
        do {
            try connection.execute("BEGIN IMMEDIATE")
        } catch {
            let error = Self.storeError(error)
            core.logger.error("cannot begin a write transaction", metadata: ["error": "\(error)"])
            for job in jobs { job.fail(error) }
            record(committed: 0, failed: jobs.count, batchFailed: true, size: jobs.count)
            return []
        }
        var outcomes: [WriteOutcome] = []
        outcomes.reserveCapacity(jobs.count)
        for index in jobs.indices {
            do {
                try connection.execute("SAVEPOINT \(Self.savepoint)")
            } catch {
                abort(outcomes, error: Self.storeError(error), unstarted: jobs[index])
                return jobs[(index + 1)...]
            }
            let transaction = Transaction(connection: connection)
            let outcome = jobs[index].perform(transaction)
            transaction.invalidate()
            connection.resetActiveStatements()
            outcomes.append(outcome)
            if connection.isAutocommit {
                // SQLite (or the body) ended the whole transaction.
                abort(outcomes, error: StoreError(
                    .transactionAborted, code: 0,
                    message: "the batch transaction was rolled back while a write ran; this write was lost"))
                return jobs[(index + 1)...]
            }
            do {
                if outcome.succeeded {
                    try connection.execute("RELEASE \(Self.savepoint)")
                } else {
                    try connection.execute("ROLLBACK TO \(Self.savepoint); RELEASE \(Self.savepoint)")
                }
            } catch {
                abort(outcomes, error: Self.storeError(error))
                return jobs[(index + 1)...]
            }
        }
        do {
            try connection.execute("COMMIT")
        } catch {
            abort(outcomes, error: Self.storeError(error))
            return []
        }
        StoreInstruments.record(StoreInstruments.commit, since: started)
        StoreInstruments.batchSize.record(outcomes.count)
        let committed = outcomes.count(where: \.succeeded)
        record(committed: committed, failed: outcomes.count - committed, batchFailed: false, size: outcomes.count)
        for outcome in outcomes { outcome.deliver(nil) }
        return []
    }

    /// Rolls back the open transaction (if any) and fails every write of it.
    private func abort(_ outcomes: [WriteOutcome], error: StoreError, unstarted: WriteJob? = nil) {
        connection.resetActiveStatements()
        if !connection.isAutocommit {
            do {
                try connection.execute("ROLLBACK")
            } catch {
                core.logger.critical("cannot roll back a failed batch", metadata: ["error": "\(error)"])
            }
        }
        core.logger.error(
            "write batch failed", metadata: ["error": "\(error)", "writes": "\(outcomes.count + (unstarted == nil ? 0 : 1))"])
        record(committed: 0, failed: outcomes.count + (unstarted == nil ? 0 : 1), batchFailed: true, size: outcomes.count)
        for outcome in outcomes { outcome.deliver(error) }
        unstarted?.fail(error)
    }

    private func record(committed: Int, failed: Int, batchFailed: Bool, size: Int) {
        core.counters.withLock { counters in
            if batchFailed { counters.failedBatches += 1 } else { counters.commits += 1 }
            counters.writesCommitted += committed
            counters.writesFailed += failed
            counters.largestBatch = max(counters.largestBatch, size)
        }
    }

    private static func storeError(_ error: any Error) -> StoreError {
        error as? StoreError ?? StoreError(.internal, message: "\(error)")
    }
}
