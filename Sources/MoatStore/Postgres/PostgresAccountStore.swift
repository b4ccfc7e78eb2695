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
    /// failed), before `write` returns, and the marks of every other
    /// instance's writes (through the revocation log, see
    /// ``PostgresCluster``). Carries the cluster's fence.
    public let validityMarks: ValidityMarkRelay
    /// This instance in the cluster of moatd sharing the database: the
    /// revocation log, the heartbeats, the fence.
    public let cluster: PostgresCluster
    private let encoder: any EventEncoder
    private let listener: PostgresEventListener

    /// The notification channel event-appending transactions notify at commit.
    public static let eventChannel = "moat_events"

    private init(
        database: PostgresDatabase, encoder: any EventEncoder, listener: PostgresEventListener, eventSignal: EventSignal,
        cluster: PostgresCluster, validityMarks: ValidityMarkRelay
    ) {
        self.database = database
        self.encoder = encoder
        self.listener = listener
        self.eventSignal = eventSignal
        self.cluster = cluster
        self.validityMarks = validityMarks
    }

    /// Connects, applies the pending ``PostgresSchema`` migrations (under
    /// the advisory lock, so concurrent starts migrate once), registers
    /// this instance in the cluster and waits (a couple of seconds at most)
    /// for its first confirmation, so the caches are trusted from the start.
    public static func open(
        configuration: PostgresConfiguration, encoder: any EventEncoder, logger: Logger = Logger(label: "moat.store")
    ) async throws -> PostgresAccountStore {
        let database = try await PostgresDatabase.open(
            configuration: configuration, migrations: PostgresSchema.migrations, logger: logger)
        let signal = EventSignal()
        let relay = ValidityMarkRelay(fence: CacheFence(bound: configuration.fence))
        let cluster = PostgresCluster(fence: configuration.fence, relay: relay)
        let listener = PostgresEventListener(configuration: configuration, signal: signal, cluster: cluster, logger: logger)
        listener.start()
        // Give the listener its first cycle, so an instance starts with
        // trusted caches; if it cannot, Validate reads the database until it can.
        let ready = ContinuousClock.now + max(configuration.fence, .seconds(2))
        while !cluster.fence.isCurrent, ContinuousClock.now < ready { try? await Task.sleep(for: .milliseconds(2)) }
        return PostgresAccountStore(
            database: database, encoder: encoder, listener: listener, eventSignal: signal, cluster: cluster,
            validityMarks: relay)
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
    ///
    /// A write that marked something appends the marks to the revocation
    /// log in its transaction, applies them here after the commit, then
    /// returns once every live instance has applied them too, or once the
    /// fencing bound has passed (``PostgresCluster``). Other writes cost
    /// nothing more.
    public func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        let encoder = self.encoder
        let cluster = self.cluster
        let appended = EventAppendMarker()
        // One marker for every attempt of a retried body: the marks handed
        // over are the union of all attempts' (a superset of the committed
        // one's; dropping a cache entry too many is harmless, one too few is
        // not, and a commit whose outcome was lost may be retried).
        let marks = ValidityMarker()
        let outcome: (result: T, position: Int64?)
        do {
            outcome = try await database.write { db -> (result: T, position: Int64?) in
                let result = try body(PostgresAccountWriter(db: db, encoder: encoder, appended: appended, marks: marks))
                let recorded = marks.marks
                return (result, recorded.isEmpty ? nil : try cluster.append(recorded, db))
            }
        } catch {
            validityMarks.publish(marks.marks)
            throw error
        }
        let committedAt = CacheFence.now()
        validityMarks.publish(marks.marks)
        if appended.isSet { eventSignal.signal() }
        if let position = outcome.position {
            _ = await cluster.awaitApplied(position, committedAt: committedAt, database: database)
        }
        return outcome.result
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

// MARK: - Cross-instance wake-ups and revocations

/// The instance's dedicated connection: it LISTENs on
/// ``PostgresAccountStore/eventChannel`` (and signals the store's
/// `EventSignal` when any instance commits events, so a long poll waiting
/// here wakes for a write made through another moatd) and on the
/// cluster's channels, and runs the ``PostgresCluster`` cycles: at once
/// when another instance appends to the revocation log, and every third of
/// the fencing bound otherwise (the heartbeat and polling backstop).
/// Reconnects on its own; while it is down, long polls still end at their
/// wait limit, local commits still signal directly, and the fence lapses
/// (Validate reads the database).
final class PostgresEventListener: Sendable {
    private let configuration: PostgresConfiguration
    private let signal: EventSignal
    private let cluster: PostgresCluster
    private let logger: Logger
    private let stopping = Mutex(false)
    private let exits = ExitLatch()

    init(configuration: PostgresConfiguration, signal: EventSignal, cluster: PostgresCluster, logger: Logger) {
        self.configuration = configuration
        self.signal = signal
        self.cluster = cluster
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
        let fence = configuration.fence.components
        let fenceNanoseconds = fence.seconds * 1_000_000_000 + fence.attoseconds / 1_000_000_000
        let interval = max(1_000_000, fenceNanoseconds / 3)
        // A cycle holds its row lock for a few statements; if this process
        // is stopped inside one, the server ends it rather than keep the
        // writers waiting on the lock (they wait one bound at most anyway).
        let idleTimeout = max(500, 2 * fenceNanoseconds / 1_000_000)
        var connection: PostgresConnection?
        var failures = 0
        var nextCycle: Int64 = 0
        var cycles = 0
        while !isStopping {
            do {
                if connection == nil || !(connection?.isUp ?? false) {
                    connection?.close()
                    connection = nil
                    let fresh = try PostgresConnection(url: configuration.url, password: configuration.password)
                    try fresh.run(
                        """
                        SET idle_in_transaction_session_timeout = '\(idleTimeout)ms';
                        LISTEN \(PostgresAccountStore.eventChannel);
                        LISTEN \(PostgresCluster.revocationChannel);
                        LISTEN \(PostgresCluster.acknowledgementChannel)
                        """)
                    try cluster.register(fresh)
                    connection = fresh
                    // Anything committed while we were away: wake the polls to look.
                    if failures > 0 {
                        signal.signal()
                        logger.info("cluster listener reconnected", metadata: ["moat.instance": "\(cluster.instanceID)"])
                    }
                    failures = 0
                    nextCycle = 0
                }
                guard let connection else { continue }
                if CacheFence.now() >= nextCycle {
                    let started = CacheFence.now()
                    cycles += 1
                    guard try cluster.cycle(connection, housekeeping: cycles % 512 == 0) else {
                        // Our row was deleted (we were silent for minutes): register again, cycle again.
                        logger.warning(
                            "cluster registration was lost; registering again", metadata: ["moat.instance": "\(cluster.instanceID)"])
                        try cluster.register(connection)
                        continue
                    }
                    nextCycle = started + interval
                }
                let wait = min(max(0, nextCycle - CacheFence.now()), 200_000_000)
                var events = false
                for notification in try connection.waitForNotifications(timeout: .nanoseconds(wait)) {
                    switch notification.channel {
                    case PostgresAccountStore.eventChannel:
                        events = true
                    case PostgresCluster.revocationChannel where notification.payload != cluster.instanceID:
                        nextCycle = 0
                    case PostgresCluster.acknowledgementChannel:
                        cluster.acknowledge(notification.payload)
                    default:
                        break
                    }
                }
                if events { signal.signal() }
            } catch {
                connection?.close()
                connection = nil
                failures += 1
                if failures == 1 {
                    logger.warning(
                        "cluster listener lost its connection; reconnecting (Validate reads the database until it is back)",
                        metadata: ["error": "\(error)"])
                }
                usleep(useconds_t(min(failures, 10) * 50_000))
            }
        }
        if let connection, connection.isUp { cluster.deregister(connection) }
        connection?.close()
    }
}
