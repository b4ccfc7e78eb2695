import CPostgres
import Foundation
public import Logging
import Synchronization

/// How a ``PostgresDatabase`` connects.
public struct PostgresConfiguration: Sendable, Hashable {
    /// A libpq connection URI (`postgresql://user@host/db`, or
    /// `postgresql:///db?host=/run/postgresql` for a Unix socket). The usual
    /// libpq environment (`PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`, ...) applies.
    public var url: String
    /// The password, when it is not in the URL or the libpq environment
    /// (moatd reads it from `store.postgres_password_file`).
    public var password: String?
    /// Pooled connections, each on a thread of its own; reads and writes share them.
    public var connections: Int
    /// How many times a transaction is run before a transient failure
    /// (serialization failure, deadlock, lost connection) is reported.
    public var maxAttempts: Int
    /// The fencing bound of the instances sharing the database
    /// (`cluster.fence_ms`): a revoking call returns once every live
    /// instance applied it or after this long, and an instance that has
    /// not confirmed it is current within it answers Validate from the
    /// database, not its caches (see ``PostgresCluster``).
    public var fence: Duration

    /// Creates a configuration; every parameter but `url` has a default.
    public init(
        url: String, password: String? = nil, connections: Int = 4, maxAttempts: Int = 10,
        fence: Duration = PostgresCluster.defaultFence
    ) {
        self.url = url
        self.password = password
        self.connections = connections
        self.maxAttempts = maxAttempts
        self.fence = fence
    }

    /// Throws `INVALID_CONFIGURATION` for values the store cannot run with.
    public func validate() throws {
        func invalid(_ message: String) -> StoreError { StoreError(.invalidConfiguration, message: message) }
        if url.allSatisfy(\.isWhitespace) { throw invalid("the PostgreSQL URL is empty") }
        if url.contains("\0") || (password?.contains("\0") ?? false) { throw invalid("a NUL character in the URL or password") }
        if !(1...256).contains(connections) { throw invalid("connections must be 1...256, got \(connections)") }
        if !(1...100).contains(maxAttempts) { throw invalid("maxAttempts must be 1...100, got \(maxAttempts)") }
        if !(PostgresCluster.fenceRange).contains(fence) {
            throw invalid("the fencing bound must be 10 ms to 60 s, got \(fence)")
        }
    }
}

/// PostgreSQL through libpq: a pool of connections, each on a dedicated
/// thread, running synchronous transaction bodies as the SQLite
/// ``Database`` does. No libpq call runs on a caller's thread, an event loop
/// or the cooperative pool.
///
/// **Writes** run in `SERIALIZABLE` transactions: bodies written for
/// SQLite's single writer (read a row, decide, write it back) stay correct
/// with any number of connections and moatd instances. **Reads** run in
/// `REPEATABLE READ READ ONLY` transactions: one consistent snapshot.
///
/// **Retries.** A serialization failure or deadlock (SQLSTATE 40001, 40P01),
/// a lost connection, or a server shutting down or refusing connections
/// (class 08, 57P01...) before COMMIT was sent rolls the transaction back
/// and runs the *whole body again* on a fresh transaction (reconnecting
/// first if needed), up to ``PostgresConfiguration/maxAttempts`` times with
/// a short backoff. Bodies must therefore be functions of what they read
/// (they are: no body has effects outside its transaction but the
/// idempotent event-append marker). When the attempts are spent, or when
/// the connection breaks *during* COMMIT (its fate unknown), the caller gets
/// `STORE_UNAVAILABLE`. Nothing is ever half-applied: a transaction commits
/// whole or not at all.
///
/// **Migrations** run at open, on one connection holding
/// `pg_advisory_lock`, so N instances starting together migrate once.
public final class PostgresDatabase: Sendable {
    /// The configuration the database was opened with.
    public let configuration: PostgresConfiguration
    /// What the start-up migrations did.
    public let migrationReport: MigrationReport
    private let core: PostgresCore

    /// The prefix of the pool threads' names, followed by their number.
    public static let threadNamePrefix = "moat.pg."
    /// The advisory lock key held while migrating ("moat" in ASCII).
    public static let migrationLockKey: Int64 = 0x6D6F_6174

    private init(configuration: PostgresConfiguration, migrationReport: MigrationReport, core: PostgresCore) {
        self.configuration = configuration
        self.migrationReport = migrationReport
        self.core = core
    }

    deinit { core.jobs.close() }

    /// Connects, applies pending migrations under the advisory lock, then
    /// starts the pool. With `migrations` nil the schema is left alone and
    /// not checked (tools and tests that only need connections). Throws `INVALID_CONFIGURATION`, `STORE_UNAVAILABLE`
    /// (the server cannot be reached), or the migrator's errors
    /// (`SCHEMA_TOO_NEW`, `MIGRATION_MISMATCH`, `MIGRATION_FAILED`).
    public static func open(
        configuration: PostgresConfiguration, migrations: [Migration]?, logger: Logger = Logger(label: "moat.store")
    ) async throws -> PostgresDatabase {
        try configuration.validate()
        if let migrations { _ = try Migrator.validate(migrations) }
        let core = PostgresCore(configuration: configuration, logger: logger)
        do {
            let report = try await withCheckedThrowingContinuation {
                (started: CheckedContinuation<MigrationReport, any Error>) in
                core.startThread(named: threadNamePrefix + "0") {
                    let slot = PostgresSlot(configuration: configuration)
                    do {
                        let connection = try slot.connection()
                        if let migrations {
                            started.resume(
                                returning: try PostgresMigrator.migrate(connection, migrations: migrations, logger: logger))
                        } else {
                            started.resume(returning: MigrationReport(previousVersion: 0, currentVersion: 0, applied: []))
                        }
                    } catch {
                        started.resume(throwing: error)
                        return
                    }
                    core.serve(slot)
                }
            }
            for number in 1..<configuration.connections {
                core.startThread(named: threadNamePrefix + String(number)) {
                    let slot = PostgresSlot(configuration: configuration)
                    // Connect eagerly; a failure here is retried by the first job.
                    _ = try? slot.connection()
                    core.serve(slot)
                }
            }
            logger.info(
                "postgresql open",
                metadata: [
                    "schema_version": "\(report.currentVersion)", "migrations_applied": "\(report.applied.count)",
                    "connections": "\(configuration.connections)",
                ])
            return PostgresDatabase(configuration: configuration, migrationReport: report, core: core)
        } catch {
            core.jobs.close()
            await core.exits.wait()
            throw error
        }
    }

    /// Runs `body` in a read-only snapshot transaction.
    public func read<T: Sendable>(_ body: @escaping @Sendable (PostgresQuerying) throws -> T) async throws -> T {
        try await run(write: false, body)
    }

    /// Runs `body` in a serializable write transaction and returns once it
    /// committed. The body may run more than once (see the type's notes);
    /// only the last run's effects are kept.
    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (PostgresQuerying) throws -> T) async throws -> T {
        try await run(write: true, body)
    }

    /// Runs `body` once in a `READ COMMITTED` transaction whose row locks
    /// wait at most `lockTimeout` milliseconds (then the lock error is
    /// thrown): for a `SELECT ... FOR SHARE` that must see, and wait for,
    /// the latest committed version of rows others are updating. Not retried.
    func lockingRead<T: Sendable>(
        lockTimeout milliseconds: Int64, _ body: @escaping @Sendable (PostgresQuerying) throws -> T
    ) async throws -> T {
        try await run(mode: .lockingRead(lockTimeoutMilliseconds: max(1, milliseconds)), attempts: 1, body)
    }

    private func run<T: Sendable>(write: Bool, _ body: @escaping @Sendable (PostgresQuerying) throws -> T) async throws -> T {
        try await run(mode: write ? .write : .read, attempts: configuration.maxAttempts, body)
    }

    private func run<T: Sendable>(
        mode: PostgresTransaction.Mode, attempts: Int, _ body: @escaping @Sendable (PostgresQuerying) throws -> T
    ) async throws -> T {
        let write = mode == .write
        let core = self.core
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = PostgresJob { slot in
                let (result, retries) = PostgresTransaction.run(slot, mode: mode, maxAttempts: attempts, body)
                core.counters.withLock { counters in
                    counters.retries += retries
                    if write { counters.writes += 1 } else { counters.reads += 1 }
                    if case .failure = result { counters.failures += 1 }
                }
                continuation.resume(with: result)
            }
            if !core.jobs.push(job) { continuation.resume(throwing: StoreError.closed()) }
        }
    }

    /// Refuses new work, lets queued transactions finish, closes every
    /// connection. Idempotent.
    public func close() async {
        core.jobs.close()
        await core.exits.wait()
    }

    /// Transactions run, retried and failed so far.
    public var metrics: PostgresMetrics { core.counters.withLock { $0 } }
}

/// Counters of a ``PostgresDatabase``.
public struct PostgresMetrics: Sendable, Hashable {
    /// Read transactions completed (successfully or not).
    public var reads = 0
    /// Write transactions completed (successfully or not).
    public var writes = 0
    /// Transaction attempts that were rolled back and run again.
    public var retries = 0
    /// Transactions that ended in an error (their body's or the store's).
    public var failures = 0
}

// MARK: - Internals

private final class PostgresCore: Sendable {
    let jobs = WorkQueue<PostgresJob>()
    let exits = ExitLatch()
    let counters = Mutex(PostgresMetrics())
    let configuration: PostgresConfiguration
    let logger: Logger

    init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
        exits.enter()
        let exits = self.exits
        let started = DispatchSemaphore(value: 0)
        let thread = Thread {
            started.wait()
            Thread.current.name = name
            body()
            exits.leave()
        }
        thread.name = name
        thread.start()
        started.signal()
    }

    /// The pool thread's loop: one job at a time on its own connection.
    func serve(_ slot: PostgresSlot) {
        while let batch = jobs.take(max: 1) {
            for job in batch { job.run(slot) }
        }
        slot.close()
    }
}

private struct PostgresJob: Sendable {
    let run: @Sendable (PostgresSlot) -> Void
}

/// A pool thread's connection, opened again when it drops. Confined to its thread.
final class PostgresSlot {
    private let configuration: PostgresConfiguration
    private var current: PostgresConnection?

    init(configuration: PostgresConfiguration) { self.configuration = configuration }

    /// The live connection, reconnecting if it dropped.
    func connection() throws -> PostgresConnection {
        if let current, current.isUp { return current }
        if let current {
            try current.reconnect()
            return current
        }
        let connection = try PostgresConnection(url: configuration.url, password: configuration.password)
        current = connection
        return connection
    }

    func close() {
        current?.close()
        current = nil
    }
}

/// One transaction with its retries.
enum PostgresTransaction {
    /// What kind of transaction a body runs in.
    enum Mode: Equatable {
        /// `REPEATABLE READ READ ONLY`: one snapshot.
        case read
        /// `SERIALIZABLE`, statements in savepoints.
        case write
        /// `READ COMMITTED` with a lock timeout (row-locking reads).
        case lockingRead(lockTimeoutMilliseconds: Int64)

        /// The statements that open the transaction (each one statement:
        /// they travel in a pipeline with the body's first).
        var begin: [String] {
            switch self {
            case .read: ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
            case .write: ["BEGIN ISOLATION LEVEL SERIALIZABLE"]
            case .lockingRead(let milliseconds):
                ["BEGIN ISOLATION LEVEL READ COMMITTED", "SET LOCAL lock_timeout = '\(milliseconds)ms'"]
            }
        }

        /// How a retry after a serialization failure begins. Nearly every
        /// write appends an event or a revocation, so it updates the one row
        /// of `event_sequence` or `revocation_sequence`: parallel writers
        /// conflict there, and plain retries of sixteen of them kept
        /// colliding until some gave up. A retry therefore first takes both
        /// tables in SHARE ROW EXCLUSIVE mode (which conflicts with itself
        /// and with the row updates), before its snapshot exists (LOCK is
        /// not a query, so the snapshot is taken after the lock is held):
        /// retries run one at a time, after every writer that held those
        /// rows has committed, and so see their commits and do not conflict
        /// on them again. First attempts stay as concurrent as before.
        var retryBegin: [String] {
            switch self {
            case .write:
                [
                    "BEGIN ISOLATION LEVEL SERIALIZABLE",
                    "LOCK TABLE event_sequence, revocation_sequence IN SHARE ROW EXCLUSIVE MODE",
                ]
            case .read, .lockingRead: begin
            }
        }
    }

    private enum Attempt<T> {
        case done(Result<T, any Error>)
        case retry(StoreError)
    }

    /// Runs `body` until it commits, fails for good, or the attempts are
    /// spent; returns the result and how many attempts were retried.
    static func run<T>(
        _ slot: PostgresSlot, mode: Mode, maxAttempts: Int, _ body: (PostgresQuerying) throws -> T
    ) -> (Result<T, any Error>, Int) {
        var attempt = 0
        var lastReason: StoreError.Reason?
        while true {
            attempt += 1
            switch once(slot, mode: mode, serialized: attempt > 1 && lastReason == .serializationFailure, body) {
            case .done(let result):
                return (result, attempt - 1)
            case .retry(let error):
                lastReason = error.reason
                guard attempt < maxAttempts else {
                    return (.failure(StoreError(
                        .unavailable,
                        message: "gave up after \(attempt) attempts; nothing was changed: \(error.message)")), attempt - 1)
                }
                backOff(attempt: attempt, reason: error.reason)
            }
        }
    }

    private static func backOff(attempt: Int, reason: StoreError.Reason) {
        // Conflicts clear in microseconds; a server that is away needs longer.
        let ceiling = reason == .serializationFailure ? 2 * attempt : 25 * (1 << min(attempt, 5))
        let milliseconds = Int.random(in: (ceiling / 2)...max(ceiling / 2, ceiling))
        usleep(useconds_t(milliseconds * 1000))
    }

    private static func isTransient(_ error: any Error) -> StoreError? {
        guard let error = error as? StoreError,
            error.reason == .unavailable || error.reason == .serializationFailure
        else { return nil }
        return error
    }

    private static func once<T>(
        _ slot: PostgresSlot, mode: Mode, serialized: Bool, _ body: (PostgresQuerying) throws -> T
    ) -> Attempt<T> {
        let write = mode == .write
        let connection: PostgresConnection
        do {
            connection = try slot.connection()
            // Sent with the body's first statement (one round trip fewer);
            // its failures surface there and are retried the same way.
            connection.begin(serialized ? mode.retryBegin : mode.begin)
        } catch {
            if let transient = isTransient(error) { return .retry(transient) }
            return .done(.failure(error))
        }
        connection.mustRetry = nil
        connection.inWriteTransaction = write
        connection.inTransaction = true
        let result = Result { try body(PostgresQuerying(connection: connection)) }
        connection.inWriteTransaction = false
        connection.inTransaction = false
        let failedInside = connection.handleTransactionStatus == PQTRANS_INERROR
        if let retry = connection.mustRetry {
            rollBack(connection)
            return .retry(retry)
        }
        if case .failure(let error) = result {
            rollBack(connection)
            if let transient = isTransient(error) { return .retry(transient) }
            return .done(result)
        }
        if failedInside {
            // The body swallowed an error that aborted the transaction:
            // PostgreSQL would turn COMMIT into ROLLBACK silently.
            rollBack(connection)
            return .done(.failure(StoreError(
                .transactionAborted, message: "a statement failed inside the transaction and its error was ignored; nothing was kept")))
        }
        do {
            try connection.end("COMMIT")
        } catch let error as StoreError {
            if error.reason == .serializationFailure { return .retry(error) }
            if error.reason == .unavailable {
                if !write { return .retry(error) }
                return .done(.failure(StoreError(
                    .unavailable,
                    message: "the connection broke during COMMIT; the write may or may not have been applied: \(error.message)")))
            }
            rollBack(connection)
            return .done(.failure(error))
        } catch {
            rollBack(connection)
            return .done(.failure(error))
        }
        return .done(result)
    }

    private static func rollBack(_ connection: PostgresConnection) {
        guard connection.isUp else { return }
        do {
            try connection.end("ROLLBACK")
        } catch {
            // A connection that cannot roll back is not trusted with the next job.
            connection.close()
        }
    }
}
