import Foundation
@testable import MoatStore
import Synchronization
import XCTest

@testable import MoatCore

// The cluster: the fence the session authority obeys (in memory, always),
// and the PostgreSQL revocation log with its heartbeats across several
// store instances on one schema (skipped without MOAT_TEST_POSTGRES_URL).

/// A memory store whose relay carries a fence, and which forwards its
/// inner store's marks only while `forwarding` is on: turning it off plays
/// an instance that has not heard of a write made elsewhere.
private final class FencedMemoryStore: AccountStore, ValidityMarkSink {
    let inner = MemoryAccountStore(encoder: MarkTestEncoder())
    let validityMarks = ValidityMarkRelay(fence: CacheFence(bound: .seconds(3600)))
    let forwarding = Atomic<Bool>(true)

    init() { inner.validityMarks.subscribe(self) }

    var fence: CacheFence { validityMarks.fence! }

    func apply(_ marks: ValidityMarks) {
        if forwarding.load(ordering: .relaxed) { validityMarks.publish(marks) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        try await inner.read(body)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        try await inner.write(body)
    }
}

private func isCached(_ authority: SessionAuthority, _ fixture: MarkFixture, _ token: String) -> Bool {
    if case .success = authority.validateCached(tenantReference: fixture.tenant.slug, token: token) { return true }
    return false
}

final class CacheFenceTests: XCTestCase {
    func testAFenceIsCurrentOnlyWithinItsBoundOfAConfirmation() {
        let fence = CacheFence(bound: .seconds(60))
        XCTAssertFalse(fence.isCurrent, "never confirmed")
        XCTAssertNil(fence.age)
        fence.confirm(asOf: CacheFence.now() - 61_000_000_000)
        XCTAssertFalse(fence.isCurrent, "a confirmation older than the bound")
        let now = CacheFence.now()
        fence.confirm(asOf: now)
        XCTAssertTrue(fence.isCurrent)
        fence.confirm(asOf: now - 61_000_000_000)
        XCTAssertTrue(fence.isCurrent, "an older confirmation does not move it back")
        fence.lapse()
        XCTAssertFalse(fence.isCurrent)
    }

    /// While the fence is not current the authority answers every Validate
    /// and tenant lookup from the store, so a change this instance never
    /// heard of is still seen; while it is current, the caches answer.
    func testAFencedAuthorityAnswersFromTheStore() async throws {
        let store = FencedMemoryStore()
        let fixture = MarkFixture()
        let token = OpaqueToken.make()
        var session = MarkFixture.session(tenant: fixture.tenant.id, user: fixture.user.id)
        session.tokenHash = OpaqueToken.hash(token)
        try await store.write { [session] writer in
            try fixture.seed(writer)
            try writer.insert(session)
        }
        let authority = SessionAuthority(store: store, clock: MarkTestClock(fixture.now))

        // Never confirmed: valid through the store, never from the cache.
        _ = try await authority.validate(tenantReference: fixture.tenant.slug, token: token)
        XCTAssertFalse(isCached(authority, fixture, token), "a fenced instance does not answer from its cache")
        XCTAssertNil(try authority.cachedTenant(reference: fixture.tenant.slug))

        store.fence.confirm(asOf: CacheFence.now())
        _ = try await authority.validate(tenantReference: fixture.tenant.slug, token: token)
        XCTAssertTrue(isCached(authority, fixture, token), "current: the cache answers")

        // A revocation and a tenant change this instance does not hear of.
        store.forwarding.store(false, ordering: .relaxed)
        try await store.write { [session] writer in
            _ = try writer.revokeSession(tenant: fixture.tenant.id, id: session.id, at: fixture.now, reason: "elsewhere")
            var tenant = fixture.tenant
            tenant.policy.requireTwoFactor = true
            try writer.update(tenant)
        }
        XCTAssertTrue(isCached(authority, fixture, token), "the gap the fence closes: a current cache is trusted")

        store.fence.lapse()
        XCTAssertFalse(isCached(authority, fixture, token))
        do {
            _ = try await authority.validate(tenantReference: fixture.tenant.slug, token: token)
            XCTFail("a fenced instance validated a revoked session")
        } catch let error as DomainError {
            XCTAssertEqual(error, .sessionInvalid)
        }
        let tenant = try await authority.tenant(reference: fixture.tenant.slug)
        XCTAssertTrue(tenant.policy.requireTwoFactor, "a fenced instance reads the tenant from the store")
    }
}

// MARK: - PostgreSQL

private func openCluster(_ schema: PostgresTestSchema, count: Int, fence: Duration = .milliseconds(250)) async throws
    -> [PostgresAccountStore]
{
    var stores: [PostgresAccountStore] = []
    for _ in 0..<count {
        stores.append(
            try await PostgresAccountStore.open(
                configuration: PostgresConfiguration(url: schema.url, connections: 2, fence: fence),
                encoder: MarkTestEncoder(), logger: testLogger))
    }
    for store in stores {
        try await eventually("instance \(store.cluster.instanceID) confirmed current") { store.cluster.fence.isCurrent }
    }
    return stores
}

private func logRows(_ store: PostgresAccountStore) async throws -> [(users: String, tenants: String, everything: Bool)] {
    try await store.database.read { db in
        try db.query("SELECT users, tenants, everything FROM revocation_log ORDER BY position", []) {
            (try $0.string("users"), try $0.string("tenants"), try $0.bool("everything"))
        }
    }
}

private func instanceRows(_ store: PostgresAccountStore) async throws -> [String] {
    try await store.database.read { db in
        try db.query("SELECT id FROM cluster_instances ORDER BY id", []) { try $0.string("id") }
    }
}

final class PostgresClusterTests: XCTestCase {
    /// A write that marks appends one log row and, when it returns, every
    /// other instance has received the marks through its relay (what its
    /// SessionAuthority applies); a write that marks nothing appends none.
    func testMarksReachEveryInstanceBeforeTheWriteReturns() async throws {
        let schema = try await PostgresTestSchema.create()
        let stores = try await openCluster(schema, count: 3)
        let (a, b, c) = (stores[0], stores[1], stores[2])
        let sinks = [RecordingMarkSink(), RecordingMarkSink()]
        b.validityMarks.subscribe(sinks[0])
        c.validityMarks.subscribe(sinks[1])
        let fixture = MarkFixture()
        try await a.write { try fixture.seed($0) }
        let seeded = try await logRows(a).count
        for sink in sinks { _ = sink.take() }

        try await a.write { try $0.append(.tenantPolicyUpdated(tenantID: fixture.tenant.id), tenant: fixture.tenant.id, at: fixture.now) }
        let unmarked = try await logRows(a).count
        XCTAssertEqual(unmarked, seeded, "a write that marks nothing appends nothing")

        try await a.write { _ = try $0.revokeSession(tenant: fixture.tenant.id, id: fixture.first.id, at: fixture.now, reason: "t") }
        for sink in sinks { XCTAssertEqual(sink.take(), ValidityMarks(users: [fixture.user.id]), "received before the write returned") }
        let rows = try await logRows(a)
        XCTAssertEqual(rows.count, seeded + 1)
        XCTAssertEqual(rows.last?.users, fixture.user.id.rawValue)
        XCTAssertEqual(rows.last?.everything, false)

        try await b.write { writer in
            var tenant = fixture.tenant
            tenant.policy.requireTwoFactor = true
            try writer.update(tenant)
        }
        XCTAssertEqual(sinks[1].take(), ValidityMarks(tenants: [fixture.tenant.id]), "from B to C")
        XCTAssertEqual(sinks[0].take(), ValidityMarks(tenants: [fixture.tenant.id]), "B's own, through its write")
        XCTAssertEqual(a.cluster.statistics.fenceElapsed, 0, "every instance was live and acknowledged")
        XCTAssertGreaterThanOrEqual(a.cluster.statistics.appliedEverywhere, 1)
        for store in stores { await store.close() }
        await schema.drop()
    }

    /// A registered instance that stops confirming (a paused process, here
    /// a row no process drives) is waited for until the fence, then no
    /// longer once its heartbeat is older than the bound; a clean close
    /// deregisters at once.
    func testASilentInstanceIsWaitedForOnlyUntilTheBound() async throws {
        let schema = try await PostgresTestSchema.create()
        let stores = try await openCluster(schema, count: 2, fence: .milliseconds(100))
        let (a, b) = (stores[0], stores[1])
        let fixture = MarkFixture()
        try await a.write { try fixture.seed($0) }
        let registered = try await instanceRows(a)
        XCTAssertEqual(Set(registered), [a.cluster.instanceID, b.cluster.instanceID])

        try await a.database.write { db in
            try db.execute(
                """
                INSERT INTO cluster_instances (id, applied, confirmed_at, started_at, host, pid)
                VALUES ('mi_silent', 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 60000, 0, 'nowhere', 1)
                """, [])
        }
        let before = a.cluster.statistics
        try await a.write { _ = try $0.revokeSession(tenant: fixture.tenant.id, id: fixture.first.id, at: fixture.now, reason: "t") }
        XCTAssertEqual(a.cluster.statistics.fenceElapsed, before.fenceElapsed + 1, "waited for the silent instance until the bound")

        try await a.database.write { db in
            try db.execute("UPDATE cluster_instances SET confirmed_at = 0 WHERE id = 'mi_silent'", [])
        }
        let middle = a.cluster.statistics
        try await a.write { _ = try $0.revokeSession(tenant: fixture.tenant.id, id: fixture.second.id, at: fixture.now, reason: "t") }
        XCTAssertEqual(a.cluster.statistics.fenceElapsed, middle.fenceElapsed, "a stale heartbeat is not waited for")
        XCTAssertEqual(a.cluster.statistics.appliedEverywhere, middle.appliedEverywhere + 1)

        await b.close()
        let remaining = try await instanceRows(a)
        XCTAssertFalse(remaining.contains(b.cluster.instanceID), "a clean close deregisters")
        await a.close()
        await schema.drop()
    }

    /// An instance whose row was deleted (silent for minutes) lapses its
    /// fence, registers again and catches up; one that missed pruned log
    /// entries drops everything it cached.
    func testALostRegistrationOrAGapInTheLogDropsTrust() async throws {
        let schema = try await PostgresTestSchema.create()
        let stores = try await openCluster(schema, count: 2)
        let (a, b) = (stores[0], stores[1])
        let sink = RecordingMarkSink()
        b.validityMarks.subscribe(sink)
        let fixture = MarkFixture()
        try await a.write { try fixture.seed($0) }

        let id = b.cluster.instanceID
        try await a.database.write { db in try db.execute("DELETE FROM cluster_instances WHERE id = ?", [id]) }
        let deadline = ContinuousClock.now + .seconds(20)
        while try await !instanceRows(a).contains(id) {
            guard ContinuousClock.now < deadline else { return XCTFail("B did not register again") }
            try await Task.sleep(for: .milliseconds(5))  // real time: B registers from its listener thread
        }
        try await eventually("B current again") { b.cluster.fence.isCurrent }

        // Entries B has not applied vanish (pruned): B must drop everything.
        _ = sink.take()
        try await a.database.write { db in
            try db.execute("UPDATE revocation_sequence SET value = value + 5 WHERE id = 1", [])
            try db.execute("SELECT pg_notify('moat_revocations', 'elsewhere')", [])
        }
        try await eventually("B dropped every cache") { sink.take().all }
        for store in stores { await store.close() }
        await schema.drop()
    }

    func testUnreadableLogEntriesDropEverything() {
        XCTAssertEqual(
            PostgresCluster.decode(everything: false, users: "", tenants: ""), ValidityMarks())
        XCTAssertTrue(PostgresCluster.decode(everything: false, users: "nonsense", tenants: "").all)
        XCTAssertTrue(PostgresCluster.decode(everything: true, users: "", tenants: "").all)
    }
}

/// Waits for a condition another connection's listener thread makes true
/// (a cluster cycle on PostgreSQL has no in-process signal to wait on).
private func eventually(
    _ what: String, timeout: Duration = .seconds(20), file: StaticString = #filePath, line: UInt = #line,
    _ condition: @Sendable () -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline {
            XCTFail("timed out waiting for: \(what)", file: file, line: line)
            return
        }
        // real time: the listener runs its cycle on its own thread and connection.
        try await Task.sleep(for: .milliseconds(1))
    }
}
