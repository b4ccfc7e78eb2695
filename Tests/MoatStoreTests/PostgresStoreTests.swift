import Foundation
import MoatCore
import MoatStore
import Synchronization
import XCTest

// What only the PostgreSQL store does: its schema in the catalog, migrations
// under the advisory lock, commit-ordered sequences, serializable retries,
// reconnection, and its failure answers. (The behaviour it shares with SQLite
// runs in the other store tests, on both backends.) Skipped without
// MOAT_TEST_POSTGRES_URL.

private struct PayloadIsType: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array(event.type.utf8) }
}

private func ms(_ value: Int64) -> Timestamp { Timestamp(milliseconds: value) }

private func tenant(_ slug: String) -> Tenant {
    Tenant(id: .random(), slug: slug, name: slug, policy: TenantPolicy(), createdAt: ms(1))
}

private func user(_ tenant: TenantID, _ email: String) -> User {
    User(id: .random(), tenantID: tenant, email: email, passwordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", role: .member, createdAt: ms(2))
}

private func session(_ tenant: TenantID, _ user: UserID, token: UInt8) -> Session {
    Session(
        id: .random(), tenantID: tenant, userID: user, tokenHash: [UInt8](repeating: token, count: 32),
        client: ClientDetails(userAgent: "curl/8", ip: "192.0.2.1", location: "", deviceName: ""),
        createdAt: ms(10), lastActiveAt: ms(10), absoluteExpiresAt: ms(1_000_000), idleTimeoutSeconds: 3_600,
        secondFactorSatisfied: false)
}

/// A counter tasks and store threads share.
private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    /// Adds one; returns the new value.
    @discardableResult
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    var current: Int { value.load(ordering: .relaxed) }
}

/// The error `body` throws, or nil.
private func thrown(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

final class PostgresStoreTests: XCTestCase {
    /// From an empty schema the migrations create every table of the SQLite
    /// schema (plus `event_sequence`); every tenant table has `tenant_id`,
    /// every reference to a user is `(tenant_id, user_id)` with ON DELETE
    /// CASCADE; a reopen applies nothing.
    func testMigrationsCreateEveryTableWithTenantIDAndCompositeKeys() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType())
        XCTAssertEqual(store.database.migrationReport.previousVersion, 0)
        XCTAssertEqual(store.database.migrationReport.applied, PostgresSchema.migrations.map(\.version))
        XCTAssertEqual(
            PostgresSchema.migrations.filter { !PostgresSchema.postgresOnlyVersions.contains($0.version) }.map(\.name),
            AccountSchema.migrations.map(\.name), "the shared migrations have the same versions and names")
        XCTAssertEqual(
            PostgresSchema.migrations.map(\.version).suffix(PostgresSchema.postgresOnlyVersions.count),
            PostgresSchema.postgresOnlyVersions.sorted()[...], "the PostgreSQL-only migrations come last")
        let name = schema.name
        let tables = try await store.database.read { db in
            try db.query("SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = ?", [name]) {
                try $0.string("t")
            }
        }
        let cluster = ["revocation_sequence", "revocation_log", "cluster_instances"]
        XCTAssertEqual(Set(tables), Set(AccountSchema.tables + ["schema_migrations", "event_sequence"] + cluster))
        for table in tables
        where !(["meta", "schema_migrations", "event_consumers", "event_sequence", "address_failures"] + cluster).contains(table) {
            let columns = try await store.database.read { db in
                try db.query(
                    "SELECT column_name::text AS c FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                    [name, table]
                ) { try $0.string("c") }
            }
            XCTAssertTrue(columns.contains(table == "tenants" ? "id" : "tenant_id"), "\(table): \(columns)")
            guard columns.contains("user_id") else { continue }
            // Each foreign key to users: its columns and delete rule.
            let references = try await store.database.read { db in
                try db.query(
                    """
                    SELECT c.confdeltype::text AS rule,
                        (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS cols
                    FROM pg_constraint c
                    WHERE c.contype = 'f' AND c.conrelid = (quote_ident(?) || '.' || quote_ident(?))::regclass
                      AND c.confrelid = (quote_ident(?) || '.users')::regclass
                    """,
                    [name, table, name]
                ) { "\(try $0.string("cols")):\(try $0.string("rule"))" }
            }
            XCTAssertTrue(references.contains("tenant_id,user_id:c"), "\(table): \(references)")
            XCTAssertEqual(references.filter { !$0.hasPrefix("tenant_id,") || !$0.hasSuffix(":c") }, [], table)
        }
        await store.close()
        let reopened = try await schema.openStore(encoder: PayloadIsType())
        XCTAssertEqual(reopened.database.migrationReport.applied, [])
        XCTAssertEqual(reopened.database.migrationReport.currentVersion, PostgresSchema.migrations.last?.version)
        await reopened.close()
        await schema.drop()
    }

    /// Five instances opening an empty database at once: one applies every
    /// migration, the others wait on the advisory lock and apply none.
    func testConcurrentStartsMigrateOnce() async throws {
        let schema = try await PostgresTestSchema.create()
        let stores = try await withThrowingTaskGroup(of: PostgresAccountStore.self) { group in
            for _ in 0..<5 { group.addTask { try await schema.openStore(encoder: PayloadIsType(), connections: 1) } }
            var opened: [PostgresAccountStore] = []
            for try await store in group { opened.append(store) }
            return opened
        }
        let applied = stores.map(\.database.migrationReport.applied)
        XCTAssertEqual(applied.filter { !$0.isEmpty }, [PostgresSchema.migrations.map(\.version)])
        XCTAssertEqual(applied.filter(\.isEmpty).count, 4)
        let recorded = try await stores[0].database.read { db in
            try db.queryFirst("SELECT count(*) AS n FROM schema_migrations", []) { try $0.int("n") }
        }
        XCTAssertEqual(recorded, PostgresSchema.migrations.count)
        for store in stores { await store.close() }
        await schema.drop()
    }

    /// A schema newer than the code, or a renamed migration, refuses to open.
    func testNewerOrMismatchedSchemaRefusesToOpen() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType())
        try await store.database.write { db in
            try db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')", [])
        }
        await store.close()
        let tooNew = await thrown { _ = try await schema.openStore(encoder: PayloadIsType()) }
        XCTAssertEqual((tooNew as? StoreError)?.reason, .schemaTooNew, "\(String(describing: tooNew))")
        let db = try await PostgresDatabase.open(configuration: schema.configuration(), migrations: nil, logger: testLogger)
        try await db.write { db in
            try db.execute("DELETE FROM schema_migrations WHERE version = 99", [])
            try db.execute("UPDATE schema_migrations SET name = 'renamed' WHERE version = 2", [])
        }
        await db.close()
        let mismatch = await thrown { _ = try await schema.openStore(encoder: PayloadIsType()) }
        XCTAssertEqual((mismatch as? StoreError)?.reason, .migrationMismatch, "\(String(describing: mismatch))")
        await schema.drop()
    }

    /// The schema refuses a session, reset or log line of another tenant's
    /// user, and a user of a missing tenant; deleting a tenant cascades to
    /// its rows but the outbox stays.
    func testSchemaRefusesCrossTenantRowsAndCascades() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType())
        let a = tenant("a")
        let b = tenant("b")
        let alice = user(a.id, "alice@a.test")
        try await store.write { writer in
            try writer.insert(a)
            try writer.insert(b)
            try writer.insert(alice)
        }
        let cross = await thrown { try await store.write { try $0.insert(session(b.id, alice.id, token: 1)) } }
        XCTAssertEqual((cross as? StoreError)?.reason, .constraintForeignKey, "\(String(describing: cross))")
        let crossLog = await thrown {
            try await store.write {
                try $0.append(
                    SecurityLogEntry(
                        tenantID: b.id, userID: alice.id, kind: .signInFailed, ip: "", userAgent: "", detail: "", createdAt: ms(1)))
            }
        }
        XCTAssertEqual((crossLog as? StoreError)?.reason, .constraintForeignKey)
        let orphan = await thrown { try await store.write { try $0.insert(user(.random(), "x@x.test")) } }
        XCTAssertEqual((orphan as? StoreError)?.reason, .constraintForeignKey)
        try await store.write { writer in
            try writer.insert(session(a.id, alice.id, token: 2))
            try writer.append(
                SecurityLogEntry(
                    tenantID: a.id, userID: alice.id, kind: .signInSucceeded, ip: "", userAgent: "", detail: "", createdAt: ms(1)))
            try writer.append(.tenantPolicyUpdated(tenantID: a.id), tenant: a.id, at: ms(1))
        }
        let deleted = try await store.write { try $0.deleteTenant(id: a.id) }
        XCTAssertTrue(deleted)
        let counts = try await store.database.read { db in
            try ["users", "sessions", "security_log", "events"].map { table in
                try db.queryFirst("SELECT count(*) AS n FROM \(table)", []) { try $0.int("n") } ?? -1
            }
        }
        XCTAssertEqual(counts, [0, 0, 0, 1], "users, sessions and log cascade; the outbox outlives them")
        await store.close()
        await schema.drop()
    }

    /// Sequences are commit-ordered: while one appending transaction is held
    /// open, the others wait (none commits a later sequence that a consumer
    /// could read past the open one); a consumer polling throughout sees
    /// 1...n in order, with nothing filled in behind its cursor.
    func testEventSequencesAreCommitOrderedWhileATransactionIsHeldOpen() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType(), connections: 8)
        let acme = tenant("acme")
        try await store.write { try $0.insert(acme) }
        let gate = Gate()
        let entered = Counter()
        let (tookSequence, tookSequenceNow) = AsyncStream<Void>.makeStream()
        let held = Task {
            try await store.database.write { db in
                try db.execute(
                    """
                    WITH next AS (UPDATE event_sequence SET value = value + 1 WHERE id = 1 RETURNING value)
                    INSERT INTO events (sequence, tenant_id, type, subject, payload, created_at)
                    SELECT value, ?, 'held', '', ?, 1 FROM next
                    """,
                    [acme.id.rawValue, [UInt8]()])
                // Only the first run blocks; a retried run goes straight on.
                if entered.increment() == 1 {
                    tookSequenceNow.yield()
                    gate.wait()
                }
            }
        }
        for await _ in tookSequence { break }  // the held transaction took its sequence
        XCTAssertEqual(entered.current, 1)

        let committed = Counter()
        let writers = (0..<5).map { _ in
            Task {
                try await store.write { try $0.append(.tenantPolicyUpdated(tenantID: acme.id), tenant: acme.id, at: ms(2)) }
                committed.increment()
            }
        }
        let poller = Task { () -> [Int64] in
            var seen: [Int64] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while seen.count < 6, ContinuousClock.now < deadline {
                let cursor = seen.last ?? 0
                let observed = store.eventSignal.generation
                let page = try await store.read { try $0.events(after: cursor, limit: 100) }
                seen += page.map(\.sequence)
                // Nothing new: wait for the next commit that appended.
                if page.isEmpty { _ = await store.eventSignal.wait(since: observed, timeout: deadline - ContinuousClock.now) }
            }
            return seen
        }
        // real time: that nothing commits is an absence over a window; the
        // blocked writers wait inside PostgreSQL with no sign to await.
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(committed.current, 0, "no later append commits while the earlier one is open")
        let visible = try await store.read { try $0.events(after: 0, limit: 100) }
        XCTAssertEqual(visible, [], "nothing is visible before the held transaction commits")

        gate.open()
        try await held.value
        for writer in writers { try await writer.value }
        let seen = try await poller.value
        XCTAssertEqual(seen, Array(1...6), "in order, no gap, nothing skipped")
        let all = try await store.read { try $0.events(after: 0, limit: 100) }
        XCTAssertEqual(all.first?.type, "held")
        let newest = try await store.read { try $0.newestEventSequence() }
        XCTAssertEqual(newest, 6)
        await store.close()
        await schema.drop()
    }

    /// Read-modify-write bodies written for SQLite's single writer stay
    /// correct on a pool: 24 concurrent increments of one counter (the
    /// lockout count) lose none; conflicts are retried.
    func testConcurrentReadModifyWriteLosesNoUpdate() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType(), connections: 6)
        let acme = tenant("acme")
        let bob = user(acme.id, "bob@acme.test")
        try await store.write { writer in
            try writer.insert(acme)
            try writer.insert(bob)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<24 {
                group.addTask {
                    try await store.write { writer in
                        guard var current = try writer.user(tenant: acme.id, id: bob.id) else { return }
                        current.failedSignIns += 1
                        try writer.update(current)
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try await store.read { try $0.user(tenant: acme.id, id: bob.id) }
        XCTAssertEqual(final?.failedSignIns, 24)
        XCTAssertEqual(store.database.metrics.failures, 0)
        await store.close()
        await schema.drop()
    }

    /// Parallel writes of different users that each append an event all
    /// update the one `event_sequence` row, so under SERIALIZABLE they
    /// conflict there; a retry takes the sequence tables' lock before its
    /// snapshot, so 400 such writes over 8 connections all commit (none
    /// gives up with UNAVAILABLE after its attempts, as 1.7% did with plain
    /// retries at 16 writers), and the sequence has no gap or duplicate.
    func testParallelEventWritesAllCommitWithGaplessSequences() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType(), connections: 8)
        let acme = tenant("acme")
        try await store.write { writer in try writer.insert(acme) }
        let writes = 400
        let failures = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<writes {
                group.addTask {
                    do {
                        try await store.write { writer in
                            let member = user(acme.id, "member\(index)@acme.test")
                            try writer.insert(member)
                            try writer.append(
                                .userDisabled(userID: member.id, email: member.email), tenant: acme.id, at: ms(100))
                        }
                    } catch {
                        failures.increment()
                    }
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(failures.current, 0, "writes that gave up")
        XCTAssertEqual(store.database.metrics.failures, 0)
        XCTAssertGreaterThan(store.database.metrics.retries, 0, "the writes did not conflict: the test shows nothing")
        let sequences = try await store.read { reader in
            try reader.events(after: 0, limit: writes + 10).map(\.sequence)
        }
        XCTAssertEqual(sequences, Array(1...Int64(writes)))
        await store.close()
        await schema.drop()
    }

    /// Connections killed by the server (as in a failover or a restart) are
    /// re-established: the next read and write succeed, retried on a new
    /// connection; with retries disabled the caller gets UNAVAILABLE
    /// `STORE_UNAVAILABLE`, never an internal error.
    func testKilledConnectionsAreReestablished() async throws {
        let schema = try await PostgresTestSchema.create()
        let application = "moat_kill_\(schema.name)"
        let url = schema.url + "&application_name=\(application)"
        let store = try await PostgresAccountStore.open(
            configuration: PostgresConfiguration(url: url, connections: 2), encoder: PayloadIsType(), logger: testLogger)
        let acme = tenant("acme")
        try await store.write { try $0.insert(acme) }
        let killer = try await PostgresDatabase.open(
            configuration: PostgresConfiguration(url: schema.url, connections: 1), migrations: nil, logger: testLogger)
        func killAll() async throws -> Int {
            try await killer.write { db in
                try db.query(
                    "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = ?",
                    [application]
                ) { try $0.bool("killed") }.filter { $0 }.count
            }
        }
        let killed = try await killAll()
        XCTAssertGreaterThanOrEqual(killed, 2, "the pool's two connections (and the event listener's)")
        let read = try await store.read { try $0.tenant(id: acme.id) }
        XCTAssertEqual(read?.slug, "acme")
        try await store.write { try $0.insert(tenant("beta")) }
        let both = try await store.read { try $0.tenants(afterSlug: nil, limit: 10) }.map(\.slug)
        XCTAssertEqual(both, ["acme", "beta"])
        XCTAssertGreaterThan(store.database.metrics.retries, 0)
        await store.close()

        let fragile = try await PostgresAccountStore.open(
            configuration: PostgresConfiguration(url: url, connections: 1, maxAttempts: 1), encoder: PayloadIsType(),
            logger: testLogger)
        _ = try await fragile.read { try $0.tenant(id: acme.id) }
        _ = try await killAll()
        let failure = await thrown { _ = try await fragile.read { try $0.tenant(id: acme.id) } }
        // UNAVAILABLE `STORE_UNAVAILABLE` on the wire (ErrorMappingTests).
        XCTAssertEqual((failure as? StoreError)?.reason, .unavailable, "\(String(describing: failure))")
        let recovered = try await fragile.read { try $0.tenant(id: acme.id) }
        XCTAssertEqual(recovered?.slug, "acme", "the next call reconnects")
        await fragile.close()
        await killer.close()
        await schema.drop()
    }

    /// A server that cannot be reached is `STORE_UNAVAILABLE` at open.
    func testUnreachableServerIsUnavailable() async throws {
        guard testPostgresURL != nil else { throw XCTSkip(postgresSkipMessage) }
        let missing = "postgresql://moat@/moat?host=/nonexistent-moat-socket-dir&connect_timeout=2"
        let error = await thrown {
            _ = try await PostgresAccountStore.open(
                configuration: PostgresConfiguration(url: missing, connections: 1), encoder: PayloadIsType(), logger: testLogger)
        }
        XCTAssertEqual((error as? StoreError)?.reason, .unavailable, "\(String(describing: error))")
    }

    /// Text PostgreSQL cannot hold (a NUL character) is INVALID_ARGUMENT
    /// `INVALID_TEXT` (never internal), nothing is written; a body that ignores a failed
    /// statement gets `TRANSACTION_ABORTED` instead of a silent rollback.
    func testBadTextAndIgnoredFailuresKeepNothing() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType())
        let acme = tenant("acme")
        try await store.write { try $0.insert(acme) }
        let nul = await thrown { try await store.write { try $0.insert(user(acme.id, "a\u{0}b@acme.test")) } }
        // INVALID_ARGUMENT `INVALID_TEXT` on the wire (ErrorMappingTests).
        XCTAssertEqual((nul as? StoreError)?.reason, .invalidText, "\(String(describing: nul))")
        let ignored = await thrown {
            try await store.database.write { db in
                try db.execute("INSERT INTO meta (key, value) VALUES ('k', ?)", [[UInt8(1)]])
                _ = try? db.query("SELECT no_such_column FROM meta", []) { _ in 0 }
            }
        }
        XCTAssertEqual((ignored as? StoreError)?.reason, .transactionAborted, "\(String(describing: ignored))")
        let users = try await store.read { try $0.userCount(tenant: acme.id) }
        let meta = try await store.meta("k")
        XCTAssertEqual(users, 0)
        XCTAssertNil(meta)
        // A statement that fails inside a write leaves the transaction usable
        // (as in SQLite): the domain error explains the UNIQUE violation.
        try await store.write { try $0.insert(user(acme.id, "same@acme.test")) }
        let taken = await thrown { try await store.write { try $0.insert(user(acme.id, "same@acme.test")) } }
        XCTAssertEqual(taken as? DomainError, .emailTaken)
        await store.close()
        await schema.drop()
    }

    /// Statements travel with their BEGIN and savepoint in one pipeline:
    /// a caught failure rolls back to its own savepoint only, so what the
    /// body kept before and after it commits; a SAVEPOINT refused in an
    /// aborted transaction never rolls back to an earlier statement's
    /// savepoint (which would un-abort the transaction and silently drop
    /// the work done since); a body that runs nothing still commits.
    func testPipelinedStatementsKeepExactlyWhatTheBodyKept() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType())
        let insert = "INSERT INTO meta (key, value) VALUES (?, ?)"
        try await store.database.write { db in
            try db.execute(insert, ["a", [UInt8(1)]])
            XCTAssertThrowsError(try db.execute(insert, ["a", [UInt8(2)]]))
            try db.execute(insert, ["b", [UInt8(3)]])
        }
        let a = try await store.meta("a")
        let b = try await store.meta("b")
        XCTAssertEqual(a, [1])
        XCTAssertEqual(b, [3])
        let aborted = await thrown {
            try await store.database.write { db in
                try db.execute(insert, ["c", [UInt8(1)]])
                _ = try? db.execute(insert, ["c", [UInt8(2)]])  // back to its savepoint, which stays
                try db.execute(insert, ["d", [UInt8(1)]])
                _ = try? db.query("SELECT no_such_column FROM meta", []) { _ in 0 }  // aborts the transaction
                _ = try? db.execute(insert, ["e", [UInt8(1)]])  // its SAVEPOINT is refused
            }
        }
        XCTAssertEqual((aborted as? StoreError)?.reason, .transactionAborted, "\(String(describing: aborted))")
        let kept = try await store.database.read { db in
            try db.query("SELECT key FROM meta WHERE key IN ('c', 'd', 'e') ORDER BY key", []) { try $0.string("key") }
        }
        XCTAssertEqual(kept, [], "an aborted transaction keeps nothing")
        let nothing = try await store.database.write { _ in 42 }
        let read = try await store.database.read { _ in 7 }
        XCTAssertEqual(nothing, 42)
        XCTAssertEqual(read, 7)
        try await store.database.write { db in try db.execute(insert, ["f", [UInt8(9)]]) }
        let f = try await store.meta("f")
        XCTAssertEqual(f, [9], "the connection is usable after a body that sent nothing")
        await store.close()
        await schema.drop()
    }

    /// A long poll waiting on one instance wakes when an event commits
    /// through another (LISTEN/NOTIFY at commit), well before its wait ends;
    /// a rolled-back append wakes nobody.
    func testALongPollOnOneInstanceWakesForACommitOnAnother() async throws {
        let schema = try await PostgresTestSchema.create()
        let writer = try await schema.openStore(encoder: PayloadIsType(), connections: 2)
        let reader = try await schema.openStore(encoder: PayloadIsType(), connections: 2)
        let acme = tenant("acme")
        try await writer.write { try $0.insert(acme) }
        let stream = EventStream(store: reader, signal: reader.eventSignal)
        _ = try await stream.poll(consumer: "mail")
        // real time: the listener connects on its own thread and PostgreSQL
        // gives no sign when its LISTEN took effect; give it a moment.
        try await Task.sleep(for: .milliseconds(300))

        let before = reader.eventSignal.generation
        _ = await thrown {
            try await writer.write { writer in
                try writer.append(.tenantPolicyUpdated(tenantID: acme.id), tenant: acme.id, at: ms(1))
                throw IntentionalError()
            }
        }
        // real time: a NOTIFY that must not arrive is an absence over a window.
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(reader.eventSignal.generation, before, "no NOTIFY for a rolled-back write")

        let started = ContinuousClock.now
        let poll = Task { try await stream.poll(consumer: "mail", waitMilliseconds: 20_000) }
        let waiting = await reader.eventSignal.untilWaiting(1)
        XCTAssertTrue(waiting, "a poll is waiting")
        XCTAssertEqual(reader.eventSignal.waiterCount, 1, "the poll waits on the other instance")
        try await writer.write { try $0.append(.tenantPolicyUpdated(tenantID: acme.id), tenant: acme.id, at: ms(2)) }
        let batch = try await poll.value
        XCTAssertEqual(batch.events.map(\.type), ["tenant.policy_updated"])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10), "woken by the commit, not by the wait limit")
        await writer.close()
        await reader.close()
        await schema.drop()
    }

    /// The key fingerprint is set once: a second, different value loses.
    func testMetaIfAbsentKeepsTheFirstValue() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: PayloadIsType())
        let first = try await store.setMetaIfAbsent("master_key_fingerprint", [1, 2])
        let second = try await store.setMetaIfAbsent("master_key_fingerprint", [3, 4])
        XCTAssertEqual(first, [1, 2])
        XCTAssertEqual(second, [1, 2])
        await store.close()
        await schema.drop()
    }
}
