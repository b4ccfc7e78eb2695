import Foundation
public import Logging
public import MoatCore
import Synchronization

/// The account store on PostgreSQL: MoatCore's `AccountStore` over a
/// ``PostgresDatabase`` with the ``PostgresSchema`` migrations.
///
/// The SQL is the SQLite store's (the `SQLiteAccountReading` and
/// `SQLiteAccountWriting` extensions, written in the dialect both accept);
/// this type overrides only what differs: the commit-ordered event sequence
/// and two `max(a, b)` updates (`GREATEST` here). So both stores behave
/// like `MemoryAccountStore`, the reference, and the same conformance
/// tests run on all three.
///
/// Writes are serializable and retried on conflicts (see
/// ``PostgresDatabase``); a failure that outlasts the retries reaches the
/// caller as `StoreError` `STORE_UNAVAILABLE` or `SERIALIZATION_FAILURE`
/// (UNAVAILABLE on the wire), never as an internal error, and nothing of
/// the write is kept.
///
/// ```swift
/// let store = try await PostgresAccountStore.open(
///     configuration: PostgresConfiguration(url: "postgresql:///moat?host=/run/postgresql"),
///     encoder: ProtobufEventEncoder())
/// ```
public final class PostgresAccountStore: AccountStore {
    /// The underlying database (metrics, migration report, raw SQL for tests).
    public let database: PostgresDatabase
    /// Signalled after each write that appended events has committed, here
    /// or (through LISTEN/NOTIFY) on any other instance on the database.
    public let eventSignal: EventSignal
    /// Receives each write's validity marks after it has committed (or
    /// failed), before `write` returns. Per instance: another moatd on the
    /// same database does not see them (see the README).
    public let validityMarks = ValidityMarkRelay()
    private let encoder: any EventEncoder
    private let listener: PostgresEventListener

    /// The notification channel event-appending transactions notify at commit.
    public static let eventChannel = "moat_events"

    private init(
        database: PostgresDatabase, encoder: any EventEncoder, listener: PostgresEventListener, eventSignal: EventSignal
    ) {
        self.database = database
        self.encoder = encoder
        self.listener = listener
        self.eventSignal = eventSignal
    }

    /// Connects and applies the pending ``PostgresSchema`` migrations (under
    /// the advisory lock, so concurrent starts migrate once).
    public static func open(
        configuration: PostgresConfiguration, encoder: any EventEncoder, logger: Logger = Logger(label: "moat.store")
    ) async throws -> PostgresAccountStore {
        let database = try await PostgresDatabase.open(
            configuration: configuration, migrations: PostgresSchema.migrations, logger: logger)
        let signal = EventSignal()
        let listener = PostgresEventListener(configuration: configuration, signal: signal, logger: logger)
        listener.start()
        return PostgresAccountStore(database: database, encoder: encoder, listener: listener, eventSignal: signal)
    }

    /// Lets queued transactions finish and closes every connection. Idempotent.
    public func close() async {
        await listener.stop()
        await database.close()
    }

    /// Runs a read-only transaction on one consistent snapshot.
    public func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        try await database.read { db in try body(PostgresAccountReader(db: db)) }
    }

    /// Runs a serializable write transaction (its body possibly more than
    /// once, see ``PostgresDatabase``); if the body throws, nothing it did
    /// is kept and its error is rethrown as is.
    public func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        let encoder = self.encoder
        let appended = EventAppendMarker()
        // One marker for every attempt of a retried body: the marks handed
        // over are the union of all attempts' (a superset of the committed
        // one's; dropping a cache entry too many is harmless, one too few is
        // not, and a commit whose outcome was lost may be retried).
        let marks = ValidityMarker()
        defer { validityMarks.publish(marks.marks) }
        let result = try await database.write { db in
            try body(PostgresAccountWriter(db: db, encoder: encoder, appended: appended, marks: marks))
        }
        if appended.isSet { eventSignal.signal() }
        return result
    }

    /// A daemon-wide fact (e.g. the key file's fingerprint), or nil if unset.
    public func meta(_ key: String) async throws -> [UInt8]? {
        try await database.read { db in
            try db.queryFirst("SELECT value FROM meta WHERE key = ?", [key]) { try $0.blob("value") }
        }
    }

    /// Sets a daemon-wide fact only if it is unset, and returns the value now
    /// recorded: of instances starting together with different values, one
    /// wins and the others see its value.
    public func setMetaIfAbsent(_ key: String, _ value: [UInt8]) async throws -> [UInt8] {
        try await database.write { db in
            try db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [key, value])
            return try db.queryFirst("SELECT value FROM meta WHERE key = ?", [key]) { try $0.blob("value") } ?? value
        }
    }

    /// Sets (or replaces) a daemon-wide fact, durably.
    public func setMeta(_ key: String, _ value: [UInt8]) async throws {
        _ = try await database.write { db in
            try db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value])
        }
    }
}

// MARK: - Reader and writer

/// A read transaction's view on PostgreSQL.
struct PostgresAccountReader: SQLiteAccountReading {
    let db: PostgresQuerying

    func newestEventSequence() throws -> Int64 {
        try PostgresEventSQL.newestSequence(db)
    }
}

/// A write transaction's view on PostgreSQL.
struct PostgresAccountWriter: SQLiteAccountWriting {
    let db: PostgresQuerying
    let encoder: any EventEncoder
    let appended: EventAppendMarker?
    let marks: ValidityMarker

    func newestEventSequence() throws -> Int64 {
        try PostgresEventSQL.newestSequence(db)
    }

    /// Takes the next sequence from `event_sequence` in this transaction:
    /// the row stays locked until commit, so sequences are commit-ordered.
    func append(_ event: DomainEvent, tenant: TenantID, at: Timestamp) throws {
        try db.execute(
            """
            WITH next AS (UPDATE event_sequence SET value = value + 1 WHERE id = 1 RETURNING value)
            INSERT INTO events (sequence, tenant_id, type, subject, payload, created_at)
            SELECT value, ?, ?, ?, ?, ? FROM next
            """,
            [tenant.rawValue, event.type, event.subject, encoder.encode(event), at.milliseconds])
        // Delivered at commit (never for a rolled-back write) to every
        // instance's listener; repeats within a transaction fold into one.
        try db.execute("SELECT pg_notify(?, '')", [PostgresAccountStore.eventChannel])
        appended?.set()
    }

    func recordEventConsumerPoll(name: String, at: Timestamp) throws {
        try db.execute(
            "UPDATE event_consumers SET last_polled_at = GREATEST(COALESCE(last_polled_at, ?1), ?1) WHERE name = ?2",
            [at.milliseconds, name])
    }

    func advanceEventConsumer(name: String, to sequence: Int64, at: Timestamp) throws -> EventConsumer? {
        try db.queryFirst(
            """
            UPDATE event_consumers SET cursor = GREATEST(cursor, ?), last_acked_at = ? WHERE name = ?
            RETURNING name, cursor, created_at, last_polled_at, last_acked_at
            """,
            [sequence, at.milliseconds, name]
        ) { row in
            EventConsumer(
                name: try row.string("name"), cursor: try row.int64("cursor"),
                createdAt: Timestamp(milliseconds: try row.int64("created_at")),
                lastPolledAt: try row.optionalInt64("last_polled_at").map { Timestamp(milliseconds: $0) },
                lastAckedAt: try row.optionalInt64("last_acked_at").map { Timestamp(milliseconds: $0) })
        }
    }
}

private enum PostgresEventSQL {
    static func newestSequence(_ db: PostgresQuerying) throws -> Int64 {
        try db.queryFirst("SELECT value FROM event_sequence WHERE id = 1", []) { try $0.int64("value") } ?? 0
    }
}

// MARK: - Cross-instance wake-ups

/// A dedicated connection that LISTENs on ``PostgresAccountStore/eventChannel``
/// and signals the store's `EventSignal` when any instance commits events,
/// so a long poll waiting here wakes for a write made through another
/// moatd. Reconnects on its own; while it is down, long polls still end at
/// their wait limit and local commits still signal directly.
final class PostgresEventListener: Sendable {
    private let configuration: PostgresConfiguration
    private let signal: EventSignal
    private let logger: Logger
    private let stopping = Mutex(false)
    private let exits = ExitLatch()

    init(configuration: PostgresConfiguration, signal: EventSignal, logger: Logger) {
        self.configuration = configuration
        self.signal = signal
        self.logger = logger
    }

    func start() {
        exits.enter()
        let thread = Thread { [self] in
            run()
            exits.leave()
        }
        thread.name = PostgresDatabase.threadNamePrefix + "listen"
        thread.start()
    }

    func stop() async {
        stopping.withLock { $0 = true }
        await exits.wait()
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    private func run() {
        var connection: PostgresConnection?
        var failures = 0
        while !isStopping {
            do {
                if connection == nil || !(connection?.isUp ?? false) {
                    let fresh = try PostgresConnection(url: configuration.url, password: configuration.password)
                    try fresh.run("LISTEN \(PostgresAccountStore.eventChannel)")
                    connection = fresh
                    // Anything committed while we were away: wake the polls to look.
                    if failures > 0 { signal.signal() }
                    failures = 0
                }
                if let connection, try connection.waitForNotifications(timeout: .milliseconds(200)) > 0 {
                    signal.signal()
                }
            } catch {
                connection?.close()
                connection = nil
                failures += 1
                if failures == 1 {
                    logger.warning("event listener lost its connection; reconnecting", metadata: ["error": "\(error)"])
                }
                usleep(useconds_t(min(failures, 10) * 100_000))
            }
        }
        connection?.close()
    }
}
