import XCTest

@testable import MoatCore

/// A cache of ``SessionCache/shardedFrom`` entries or more is split into
/// shards by token hash: a user's sessions land in several, and every rule
/// of the one-lock cache still holds across them.
final class SessionCacheShardTests: XCTestCase {
    private let capacity = SessionCache.shardedFrom

    /// 64 sessions of one user: with 16 shards, all but certainly in more
    /// than one (the test checks it).
    private func manySessions(of user: UserID, in tenant: TenantID, count: Int = 64) -> [ValidatedSession] {
        (0..<count).map { _ in sessionFixture(tenant: tenant, user: user).validated }
    }

    private func shardOf(_ validated: ValidatedSession) -> UInt64 {
        validated.session.tokenHash.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) } & 15
    }

    private func insert(_ cache: SessionCache, _ validated: ValidatedSession) {
        guard case .miss(let epoch) = cache.validate(
            tenant: validated.session.tenantID, tokenHash: validated.session.tokenHash, now: validated.session.createdAt)
        else { return XCTFail("cached before insert") }
        cache.insert(validated, loadedAt: epoch)
    }

    private func isHit(_ cache: SessionCache, _ validated: ValidatedSession) -> Bool {
        if case .hit = cache.validate(
            tenant: validated.session.tenantID, tokenHash: validated.session.tokenHash, now: validated.session.createdAt)
        {
            return true
        }
        return false
    }

    func testInvalidatingAUserDropsTheirSessionsInEveryShard() {
        let cache = SessionCache(capacity: capacity)
        let tenant = TenantID.random()
        let user = UserID.random()
        let sessions = manySessions(of: user, in: tenant)
        XCTAssertGreaterThan(Set(sessions.map(shardOf)).count, 4, "the sessions spread over shards")
        let bystander = sessionFixture(tenant: tenant).validated
        for session in sessions + [bystander] { insert(cache, session) }
        XCTAssertEqual(cache.statistics.entries, sessions.count + 1)
        XCTAssertTrue(sessions.allSatisfy { isHit(cache, $0) })
        XCTAssertEqual(cache.cachedUsers, 2)
        XCTAssertGreaterThan(cache.userRecords, 5, "one record per shard the user has sessions in")

        cache.invalidate(user: user)
        XCTAssertFalse(sessions.contains { isHit(cache, $0) }, "no shard keeps a session of the user")
        XCTAssertTrue(isHit(cache, bystander), "another user's session stays")
        XCTAssertEqual(cache.statistics.entries, 1)
        XCTAssertEqual(cache.cachedUsers, 1)
        XCTAssertEqual(cache.userRecords, 1)
    }

    /// Facts loaded with one session reach the user's sessions in every
    /// shard; the same user id in another tenant drops them all.
    func testAUserLoadReachesTheRecordsInEveryShard() {
        let cache = SessionCache(capacity: capacity)
        let tenant = TenantID.random()
        let user = UserID.random()
        let sessions = manySessions(of: user, in: tenant, count: 32)
        for session in sessions { insert(cache, session) }
        var renamed = sessionFixture(tenant: tenant, user: user).validated
        renamed.email = "renamed@acme.test"
        renamed.role = .owner
        insert(cache, renamed)
        for session in sessions {
            guard case .hit(let answer) = cache.validate(
                tenant: tenant, tokenHash: session.session.tokenHash, now: session.session.createdAt)
            else { return XCTFail("expected a hit") }
            XCTAssertEqual(answer.email, "renamed@acme.test")
            XCTAssertEqual(answer.role, .owner)
        }
        let elsewhere = sessionFixture(user: user).validated
        insert(cache, elsewhere)
        XCTAssertFalse(sessions.contains { isHit(cache, $0) }, "kept under a record of another tenant")
        XCTAssertEqual(cache.statistics.entries, 1)
    }

    /// The epoch guard is global: an invalidation of any user, taken while
    /// a load of a session in another shard is in flight, drops that load.
    func testALoadThatRacedAnInvalidationIsNotCachedWhateverTheShards() {
        let cache = SessionCache(capacity: capacity)
        let tenant = TenantID.random()
        let loaded = sessionFixture(tenant: tenant).validated
        let other = manySessions(of: .random(), in: tenant).first { shardOf($0) != shardOf(loaded) }!
        guard case .miss(let epoch) = cache.validate(
            tenant: tenant, tokenHash: loaded.session.tokenHash, now: loaded.session.createdAt)
        else { return XCTFail("cached before insert") }
        cache.invalidate(user: other.session.userID)
        cache.insert(loaded, loadedAt: epoch)
        XCTAssertFalse(isHit(cache, loaded), "loaded under an older epoch")
        insert(cache, loaded)
        XCTAssertTrue(isHit(cache, loaded))

        cache.invalidateAll()
        XCTAssertFalse(isHit(cache, loaded))
        XCTAssertEqual(cache.statistics.entries, 0)
    }

    func testStatisticsAndTouchesAreSummedOverTheShards() {
        let cache = SessionCache(capacity: capacity, touchGranularityMilliseconds: 1000)
        let tenant = TenantID.random()
        let sessions = (0..<200).map { _ in sessionFixture(tenant: tenant).validated }
        for session in sessions { insert(cache, session) }
        let later = sessions[0].session.createdAt.adding(seconds: 10)
        for session in sessions {
            guard case .hit = cache.validate(tenant: tenant, tokenHash: session.session.tokenHash, now: later) else {
                return XCTFail("expected a hit")
            }
        }
        let statistics = cache.statistics
        XCTAssertEqual(statistics.entries, 200)
        XCTAssertEqual(statistics.hits, 200)
        XCTAssertEqual(statistics.misses, 200)
        XCTAssertTrue(sessions.allSatisfy { cache.pendingLastActive($0.session.id) == later })

        let touches = cache.takePendingTouches()
        XCTAssertEqual(Set(touches.map(\.sessionID)), Set(sessions.map(\.session.id)))
        XCTAssertTrue(touches.allSatisfy { $0.at == later && $0.tenantID == tenant })
        XCTAssertTrue(cache.takePendingTouches().isEmpty, "taken from every shard")
        cache.restore(touches)
        XCTAssertEqual(cache.takePendingTouches().count, 200, "put back where each session's id finds it")
    }

    func testEachShardHoldsItsShareOfTheCapacity() {
        let cache = SessionCache(capacity: capacity)
        let tenant = TenantID.random()
        let sessions = (0..<(capacity + capacity / 2)).map { _ in sessionFixture(tenant: tenant).validated }
        for session in sessions { insert(cache, session) }
        XCTAssertLessThanOrEqual(cache.statistics.entries, capacity)
        // Random tokens fill the 16 shards about evenly: the cache is full,
        // give or take what one shard's share varies by.
        XCTAssertGreaterThan(cache.statistics.entries, capacity - capacity / 16)
        XCTAssertEqual(cache.evictions, UInt64(sessions.count - cache.statistics.entries))
    }

    func testASmallCacheHasOneShard() {
        let cache = SessionCache(capacity: 3)
        let tenant = TenantID.random()
        let sessions = (0..<4).map { _ in sessionFixture(tenant: tenant).validated }
        for session in sessions { insert(cache, session) }
        XCTAssertEqual(cache.statistics.entries, 3, "exactly the capacity, whatever the hashes")
    }
}
