import CPostgres
import Dispatch
import Foundation
public import MoatCore
import Synchronization

// MARK: - Schema

extension PostgresSchema {
    /// The PostgreSQL-only migrations (the SQLite store has one process and
    /// no cluster): their versions follow the shared ones.
    public static let postgresOnlyVersions: Set<Int> = [8]

    /// Version 8: the revocation log and the instance heartbeats that make
    /// validity marks reach every moatd on the database (``PostgresCluster``).
    public static let version8 = clusterMigration(version: 8)

    /// The cluster tables, as a migration of the given version (kept apart
    /// so that it can move when other migrations are added).
    ///
    /// - `revocation_sequence`: one row, updated by each appending
    ///   transaction, so positions are assigned in commit order with no gap
    ///   (as `event_sequence`).
    /// - `revocation_log`: one row per committed write that marked
    ///   something: the users and tenants (ids separated by spaces) or
    ///   everything, and the instance that wrote it.
    /// - `cluster_instances`: one row per running moatd: how far it has
    ///   applied the log and when it last confirmed that (database clock,
    ///   milliseconds). Daemon-wide, so no `tenant_id`.
    static func clusterMigration(version: Int) -> Migration {
        Migration(
            version: version, name: "cluster_revocation_log",
            sql: """
                CREATE TABLE revocation_sequence (
                    id    SMALLINT PRIMARY KEY CHECK (id = 1),
                    value BIGINT NOT NULL CHECK (value >= 0)
                );
                INSERT INTO revocation_sequence (id, value) VALUES (1, 0);

                CREATE TABLE revocation_log (
                    position   BIGINT PRIMARY KEY CHECK (position > 0),
                    origin     TEXT COLLATE "C" NOT NULL,
                    everything SMALLINT NOT NULL CHECK (everything IN (0, 1)),
                    users      TEXT COLLATE "C" NOT NULL,
                    tenants    TEXT COLLATE "C" NOT NULL,
                    created_at BIGINT NOT NULL
                );
                CREATE INDEX revocation_log_by_time ON revocation_log (created_at);

                CREATE TABLE cluster_instances (
                    id           TEXT COLLATE "C" PRIMARY KEY,
                    applied      BIGINT NOT NULL CHECK (applied >= 0),
                    confirmed_at BIGINT NOT NULL,
                    started_at   BIGINT NOT NULL,
                    host         TEXT COLLATE "C" NOT NULL,
                    pid          BIGINT NOT NULL
                );
                """)
    }
}

// MARK: - The cluster

/// Makes validity marks reach every moatd on one PostgreSQL before the
/// write that made them returns, with fencing for the instances that
/// cannot be reached.
///
/// **Append.** Every write transaction that marked something appends one
/// row to `revocation_log` (its position taken from a one-row counter, so
/// commit-ordered and gapless) and NOTIFYs `moat_revocations`, in the
/// same transaction.
///
/// **Apply.** Each instance's listener (one dedicated connection, LISTEN
/// plus a poll every bound/3 as a backstop) runs a *cycle*: it locks its
/// own `cluster_instances` row (`FOR UPDATE`), reads the log past its
/// applied position in a snapshot taken after the lock, hands the marks to
/// the store's ``ValidityMarkRelay`` (so the ``SessionAuthority`` applies
/// them, exactly as local ones), records the new position and the
/// database time in its row, NOTIFYs `moat_revocation_acks`, commits, and
/// only then confirms its ``CacheFence`` as of a time taken before the lock.
///
/// **Wait.** After the commit, the writing instance reads the live
/// instances (`confirmed_at` within the bound, database clock) with
/// `FOR SHARE`, which waits for a cycle in progress and sees its result;
/// it returns once each has acknowledged the position, or once the bound
/// has passed since the commit.
///
/// **Why a paused instance cannot answer stale.** An instance confirms its
/// fence as of a time *t* before its cycle's snapshot, and trusts its
/// caches until *t* + bound. If that snapshot missed the write, *t* came
/// before the commit, so the trust ends before commit + bound, which is
/// when the writer returns at the latest. An instance the writer left out
/// (not live) either had confirmed too long ago to be trusted, or ran its
/// cycle after the writer's `FOR SHARE` read, hence after the commit (and
/// its snapshot includes the write). SIGSTOP, a partition or a lost
/// database all end the same way: the fence lapses and Validate reads the
/// database.
public final class PostgresCluster: Sendable {
    /// The default fencing bound (`cluster.fence_ms`).
    public static let defaultFence: Duration = .milliseconds(250)
    /// The fencing bounds accepted.
    public static let fenceRange: ClosedRange<Duration> = .milliseconds(10) ... .seconds(60)
    /// The channel a marking write notifies at commit (payload: its instance id).
    public static let revocationChannel = "moat_revocations"
    /// The channel an instance notifies after applying (payload: "id position").
    public static let acknowledgementChannel = "moat_revocation_acks"
    /// Rows of instances silent this long, and log rows this old, are deleted.
    static let retentionMilliseconds: Int64 = 600_000
    /// At most this many log rows are read per cycle; a longer lag drops every cache.
    static let batchLimit: Int64 = 1000

    /// This instance's id in `cluster_instances` (random per process).
    public let instanceID: String
    /// The fence the store's relay carries (the authority reads it).
    public let fence: CacheFence
    private let fenceNanoseconds: Int64
    private let fenceMilliseconds: Int64
    private let relay: ValidityMarkRelay
    private let state = Mutex(State())

    private struct Waiter {
        let position: Int64
        var pending: Set<String>
        let continuation: CheckedContinuation<WaitOutcome, Never>
    }

    private struct State {
        /// The log position this instance has applied (the listener's).
        var applied: Int64?
        /// The highest position each other instance acknowledged.
        var acknowledged: [String: Int64] = [:]
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var statistics = PostgresClusterStatistics()
    }

    /// How a revoking call's wait ended.
    public enum WaitOutcome: Sendable, Equatable {
        /// Every live instance acknowledged the entry (or there was none).
        case applied
        /// The fencing bound passed first; the instances that had not
        /// acknowledged are fenced by now.
        case fenced
    }

    init(fence bound: Duration, relay: ValidityMarkRelay) {
        let parts = bound.components
        fenceNanoseconds = parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
        fenceMilliseconds = max(1, fenceNanoseconds / 1_000_000)
        fence = relay.fence ?? CacheFence(bound: bound)
        self.relay = relay
        instanceID = "mi_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// Counters, for benchmarks and tests.
    public var statistics: PostgresClusterStatistics { state.withLock { $0.statistics } }

    /// The database clock in milliseconds, as SQL.
    static let databaseNow = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    // MARK: Append (inside the writing transaction)

    /// Appends the marks to the log and notifies; returns the position.
    func append(_ marks: ValidityMarks, _ db: PostgresQuerying) throws -> Int64 {
        let users = marks.users.map(\.rawValue).sorted().joined(separator: " ")
        let tenants = marks.tenants.map(\.rawValue).sorted().joined(separator: " ")
        let position = try db.queryFirstWithoutSavepoint(
            """
            WITH next AS (UPDATE revocation_sequence SET value = value + 1 WHERE id = 1 RETURNING value),
            appended AS (
                INSERT INTO revocation_log (position, origin, everything, users, tenants, created_at)
                SELECT value, ?1, ?2, ?3, ?4, \(Self.databaseNow) FROM next RETURNING position)
            SELECT position, pg_notify(?5, ?1) FROM appended
            """,
            [instanceID, marks.all, users, tenants, Self.revocationChannel]
        ) { try $0.int64("position") }
        guard let position else { throw StoreError(.internal, message: "the revocation counter row is missing") }
        return position
    }

    // MARK: Wait (after the commit)

    /// Returns once every live instance has applied `position`, or once
    /// the bound has passed since `committedAt` (a ``CacheFence/now()``
    /// taken after the commit).
    func awaitApplied(_ position: Int64, committedAt: Int64, database: PostgresDatabase) async -> WaitOutcome {
        let deadline = committedAt + fenceNanoseconds
        var pending: Set<String>
        do {
            let remaining = (deadline - CacheFence.now()) / 1_000_000
            let (id, fenceMilliseconds) = (instanceID, self.fenceMilliseconds)
            let live = try await database.lockingRead(lockTimeout: remaining) { db in
                try db.query(
                    """
                    SELECT id, applied FROM cluster_instances
                    WHERE id <> ? AND confirmed_at >= \(Self.databaseNow) - ? FOR SHARE
                    """,
                    [id, fenceMilliseconds]
                ) { (try $0.string("id"), try $0.int64("applied")) }
            }
            pending = Set(live.filter { $0.1 < position }.map(\.0))
        } catch {
            // Who is live is unknown: wait out the bound, after which every
            // instance that has not applied the entry is fenced.
            pending = [""]
        }
        if pending.isEmpty {
            state.withLock { $0.statistics.appliedEverywhere += 1 }
            return .applied
        }
        let remaining = max(0, deadline - CacheFence.now())
        return await withCheckedContinuation { (continuation: CheckedContinuation<WaitOutcome, Never>) in
            let waiter: UInt64? = state.withLock { state in
                pending = pending.filter { (state.acknowledged[$0] ?? 0) < position }
                if pending.isEmpty {
                    state.statistics.appliedEverywhere += 1
                    return nil
                }
                state.nextWaiter += 1
                state.waiters[state.nextWaiter] = Waiter(position: position, pending: pending, continuation: continuation)
                return state.nextWaiter
            }
            guard let waiter else { return continuation.resume(returning: .applied) }
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(remaining))) { [self] in
                let expired = state.withLock { state -> Waiter? in
                    guard let expired = state.waiters.removeValue(forKey: waiter) else { return nil }
                    state.statistics.fenceElapsed += 1
                    return expired
                }
                expired?.continuation.resume(returning: .fenced)
            }
        }
    }

    /// An acknowledgement from another instance ("id position").
    func acknowledge(_ payload: String) {
        let parts = payload.split(separator: " ")
        guard parts.count == 2, let position = Int64(parts[1]) else { return }
        let id = String(parts[0])
        let done = state.withLock { state -> [CheckedContinuation<WaitOutcome, Never>] in
            if state.acknowledged.count > 4096 { state.acknowledged.removeAll() }
            state.acknowledged[id] = max(state.acknowledged[id] ?? 0, position)
            var done: [CheckedContinuation<WaitOutcome, Never>] = []
            for (key, var waiter) in state.waiters where waiter.pending.contains(id) && position >= waiter.position {
                waiter.pending.remove(id)
                if waiter.pending.isEmpty {
                    state.waiters.removeValue(forKey: key)
                    state.statistics.appliedEverywhere += 1
                    done.append(waiter.continuation)
                } else {
                    state.waiters[key] = waiter
                }
            }
            return done
        }
        for continuation in done { continuation.resume(returning: .applied) }
    }

    // MARK: The listener's side

    /// Registers this instance (its row, applied up to the current end of
    /// the log on a first start, or to what it applied before if its row
    /// was deleted while it was away). Does not confirm the fence: the
    /// next cycle does.
    func register(_ connection: PostgresConnection) throws {
        let db = PostgresQuerying(connection: connection)
        let applied: Int64
        if let known = state.withLock({ $0.applied }) {
            applied = known
        } else {
            // Nothing is cached yet: what was revoked before now cannot be stale here.
            applied = try db.queryFirst("SELECT value FROM revocation_sequence WHERE id = 1", []) { try $0.int64("value") } ?? 0
            state.withLock { $0.applied = applied }
        }
        try db.execute(
            """
            INSERT INTO cluster_instances (id, applied, confirmed_at, started_at, host, pid)
            VALUES (?1, ?2, \(Self.databaseNow), \(Self.databaseNow), ?3, ?4)
            ON CONFLICT (id) DO UPDATE SET confirmed_at = excluded.confirmed_at
            """,
            [instanceID, applied, ProcessInfo.processInfo.hostName, Int64(getpid())])
    }

    /// Deletes this instance's row (a clean shutdown), so writers stop
    /// waiting for it at once.
    func deregister(_ connection: PostgresConnection) {
        _ = try? PostgresQuerying(connection: connection).execute(
            "DELETE FROM cluster_instances WHERE id = ?", [instanceID])
    }

    /// One cycle: catch up with the log, acknowledge, confirm the fence.
    /// Returns false when this instance's row was gone (it registers again
    /// and runs another cycle).
    func cycle(_ connection: PostgresConnection, housekeeping: Bool) throws -> Bool {
        let started = CacheFence.now()
        let from = state.withLock { $0.applied } ?? 0
        // BEGIN, the row lock and the log read travel in one pipeline (one
        // round trip). Under READ COMMITTED each statement takes its own
        // snapshot, so the log read's comes after the lock is held.
        var failedAt: Int?
        let results = try connection.pipeline(
            [
                ("BEGIN ISOLATION LEVEL READ COMMITTED", []),
                ("SELECT applied FROM cluster_instances WHERE id = $1 FOR UPDATE", [instanceID]),
                (
                    """
                    SELECT s.value AS head, l.position, l.origin, l.everything, l.users, l.tenants
                    FROM revocation_sequence s
                    LEFT JOIN revocation_log l ON l.position > $1 AND l.position <= $1 + $2
                    WHERE s.id = 1 ORDER BY l.position
                    """,
                    [from, Self.batchLimit]
                ),
            ], failedAt: &failedAt)
        defer { results.forEach { PQclear($0) } }
        guard PQntuples(results[1]) > 0 else {
            try connection.run("ROLLBACK")
            fence.lapse()
            return false
        }
        let log = results[2]
        let rows = try (0..<PQntuples(log)).map { index in
            let row = PostgresRow(result: log, row: index)
            let head = try row.int64("head")
            guard let position = try row.optionalInt64("position") else {
                return (head: head, entry: (position: Int64, origin: String, marks: ValidityMarks)?.none)
            }
            return (head, (position, try row.string("origin"), Self.decode(
                everything: try row.bool("everything"), users: try row.string("users"), tenants: try row.string("tenants"))))
        }
        let head = rows.first?.head ?? from
        let entries = rows.compactMap(\.entry)
        var marks = ValidityMarks()
        if head > from {
            let expected = min(head - from, Self.batchLimit)
            let contiguous = entries.count == expected && entries.first?.position == from + 1
            if contiguous {
                // This instance's own entries were applied by its write.
                for entry in entries where entry.origin != instanceID { marks.formUnion(entry.marks) }
            } else {
                // Entries were pruned while this instance was away, or it
                // lags by more than a batch: drop every cache.
                marks.all = true
            }
        } else if head < from {
            // The log is behind what this instance applied: not the same log.
            marks.all = true
        }
        relay.publish(marks)
        let advanced = head != from
        var script = "UPDATE cluster_instances SET applied = \(head), confirmed_at = \(Self.databaseNow) WHERE id = '\(instanceID)';"
        if advanced { script += " SELECT pg_notify('\(Self.acknowledgementChannel)', '\(instanceID) \(head)');" }
        if housekeeping {
            script += """
                 DELETE FROM cluster_instances WHERE confirmed_at < \(Self.databaseNow) - \(Self.retentionMilliseconds);
                 DELETE FROM revocation_log WHERE created_at < \(Self.databaseNow) - \(Self.retentionMilliseconds);
                """
        }
        try connection.run(script + " COMMIT")
        state.withLock { state in
            state.applied = head
            state.statistics.cycles += 1
            if !marks.isEmpty { state.statistics.entriesApplied += 1 }
        }
        fence.confirm(asOf: started)
        return true
    }

    static func decode(everything: Bool, users: String, tenants: String) -> ValidityMarks {
        var marks = ValidityMarks(all: everything)
        for text in users.split(separator: " ") {
            guard let id = UserID(String(text)) else {
                marks.all = true
                continue
            }
            marks.users.insert(id)
        }
        for text in tenants.split(separator: " ") {
            guard let id = TenantID(String(text)) else {
                marks.all = true
                continue
            }
            marks.tenants.insert(id)
        }
        return marks
    }
}

/// Counters of a ``PostgresCluster``.
public struct PostgresClusterStatistics: Sendable, Hashable {
    /// Listener cycles completed (each confirmed the fence).
    public var cycles = 0
    /// Cycles that applied marks from other instances.
    public var entriesApplied = 0
    /// Revoking calls that returned because every live instance applied.
    public var appliedEverywhere = 0
    /// Revoking calls that returned because the bound passed.
    public var fenceElapsed = 0
}
