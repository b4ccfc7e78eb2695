import XCTest

@testable import MoatCore

/// The compact session cache: what a hit carries, the per-user records the
/// sessions of one user share, identifiers packed to 128 bits, the slab's
/// reuse of slots, and pending touches.
final class SessionCacheCompactTests: XCTestCase {
    private func insert(_ cache: SessionCache, _ validated: ValidatedSession) {
        guard case .miss(let epoch) = cache.validate(
            tenant: validated.session.tenantID, tokenHash: validated.session.tokenHash, now: validated.session.createdAt)
        else { return XCTFail("cached before insert") }
        cache.insert(validated, loadedAt: epoch)
    }

    private func hit(
        _ cache: SessionCache, _ validated: ValidatedSession, at now: Timestamp? = nil, file: StaticString = #filePath,
        line: UInt = #line
    ) -> ValidatedSession? {
        let lookup = cache.validate(
            tenant: validated.session.tenantID, tokenHash: validated.session.tokenHash,
            now: now ?? validated.session.createdAt)
        guard case .hit(let answer) = lookup else {
            XCTFail("expected a hit, got \(lookup)", file: file, line: line)
            return nil
        }
        return answer
    }

    /// A second session of the user of `validated`.
    private func sibling(of validated: ValidatedSession) -> ValidatedSession {
        let (other, _) = sessionFixture(tenant: validated.session.tenantID, user: validated.session.userID)
        return other
    }

    // MARK: What a hit carries

    func testAHitIsTheStoredSessionWithoutItsDisplayFields() {
        let cache = SessionCache()
        var (validated, _) = sessionFixture()
        validated.session.secondFactorSatisfied = true
        validated.session.idleTimeoutSeconds = 1234
        validated.role = .admin
        validated.twoFactorEnabled = true
        validated.email = "someone.with.a.long.address@example.test"
        XCTAssertNotEqual(validated.session.client, ClientDetails(), "the fixture has display fields")
        insert(cache, validated)
        guard let answer = hit(cache, validated) else { return }
        XCTAssertEqual(answer, validated.withoutDisplayFields)
        XCTAssertEqual(answer.session.client, ClientDetails())
        XCTAssertEqual(answer.session.id, validated.session.id)
        XCTAssertEqual(answer.session.userID, validated.session.userID)
        XCTAssertEqual(answer.session.tenantID, validated.session.tenantID)
        XCTAssertEqual(answer.session.tokenHash, validated.session.tokenHash)
        XCTAssertEqual(answer.session.createdAt, validated.session.createdAt)
        XCTAssertEqual(answer.session.absoluteExpiresAt, validated.session.absoluteExpiresAt)
        XCTAssertEqual(answer.session.idleTimeoutSeconds, 1234)
        XCTAssertTrue(answer.session.secondFactorSatisfied)
        XCTAssertEqual(answer.email, validated.email)
        XCTAssertEqual(answer.role, .admin)
        XCTAssertTrue(answer.twoFactorEnabled)
    }

    func testAHitRecordsActivityPastTheGranularity() {
        let cache = SessionCache(touchGranularityMilliseconds: 1000)
        let (validated, _) = sessionFixture()
        insert(cache, validated)
        let start = validated.session.createdAt
        XCTAssertEqual(hit(cache, validated, at: start.adding(seconds: 0))?.session.lastActiveAt, start)
        XCTAssertNil(cache.pendingLastActive(validated.session.id), "within the granularity")
        let later = start.adding(seconds: 5)
        XCTAssertEqual(hit(cache, validated, at: later)?.session.lastActiveAt, later)
        XCTAssertEqual(cache.pendingLastActive(validated.session.id), later)
        XCTAssertEqual(
            cache.takePendingTouches(),
            [SessionCache.Touch(tenantID: validated.session.tenantID, sessionID: validated.session.id, at: later)])
        XCTAssertNil(cache.pendingLastActive(validated.session.id), "taken")
    }

    // MARK: Per-user records

    func testSessionsOfOneUserShareOneRecordThatGoesWithTheLastSession() {
        let cache = SessionCache()
        let (first, _) = sessionFixture(idleSeconds: 600)
        var second = sibling(of: first)
        second.session.idleTimeoutSeconds = 1200
        let (stranger, _) = sessionFixture()
        insert(cache, first)
        insert(cache, second)
        insert(cache, stranger)
        XCTAssertEqual(cache.statistics.entries, 3)
        XCTAssertEqual(cache.cachedUsers, 2, "two users")

        // The first session idles out; its user stays for the second.
        let start = first.session.createdAt
        XCTAssertEqual(
            cache.validate(tenant: first.session.tenantID, tokenHash: first.session.tokenHash, now: start.adding(seconds: 900)),
            .invalid)
        XCTAssertEqual(cache.statistics.entries, 2)
        XCTAssertEqual(cache.cachedUsers, 2)
        XCTAssertNotNil(hit(cache, second, at: start.adding(seconds: 900)))
        // And then the second: the user's record goes with it.
        XCTAssertEqual(
            cache.validate(
                tenant: second.session.tenantID, tokenHash: second.session.tokenHash, now: start.adding(seconds: 2200)),
            .invalid)
        XCTAssertEqual(cache.statistics.entries, 1)
        XCTAssertEqual(cache.cachedUsers, 1)
        XCTAssertNotNil(hit(cache, stranger))
    }

    func testEvictionAndInvalidationDropTheRecordsOfUsersLeftWithoutSessions() {
        let cache = SessionCache(capacity: 2)
        let (a, _) = sessionFixture()
        let (b, _) = sessionFixture()
        let (c, _) = sessionFixture()
        insert(cache, a)
        insert(cache, b)
        insert(cache, c)
        XCTAssertEqual(cache.statistics.entries, 2)
        XCTAssertEqual(cache.evictions, 1)
        XCTAssertEqual(cache.cachedUsers, 2, "the evicted session's user went with it")

        let a2 = sibling(of: c)
        insert(cache, a2)
        cache.invalidate(user: c.session.userID)
        XCTAssertEqual(cache.cachedUsers, cache.statistics.entries, "one user per remaining session")
        for gone in [c, a2] {
            guard case .miss = cache.validate(tenant: gone.session.tenantID, tokenHash: gone.session.tokenHash, now: gone.session.createdAt)
            else { return XCTFail("an invalidated user's session answered") }
        }
        cache.invalidateAll()
        XCTAssertEqual(cache.statistics.entries, 0)
        XCTAssertEqual(cache.cachedUsers, 0)
    }

    func testAUserChangeLoadedWithOneSessionReachesAllTheirSessions() {
        let cache = SessionCache()
        let (first, _) = sessionFixture()
        insert(cache, first)
        var second = sibling(of: first)
        second.email = "renamed@acme.test"
        second.role = .owner
        second.twoFactorEnabled = true
        insert(cache, second)
        guard let answer = hit(cache, first) else { return }
        XCTAssertEqual(answer.email, "renamed@acme.test")
        XCTAssertEqual(answer.role, .owner)
        XCTAssertTrue(answer.twoFactorEnabled)

        // A status loaded with a third session reaches the first too.
        var third = sibling(of: first)
        third.userStatus = .disabled
        insert(cache, third)
        XCTAssertEqual(
            cache.validate(tenant: first.session.tenantID, tokenHash: first.session.tokenHash, now: first.session.createdAt),
            .invalid)
    }

    func testTheSameUserIdInAnotherTenantReplacesTheRecordAndItsSessions() {
        let cache = SessionCache()
        let (first, _) = sessionFixture()
        insert(cache, first)
        let (elsewhere, _) = sessionFixture(user: first.session.userID)
        XCTAssertNotEqual(elsewhere.session.tenantID, first.session.tenantID)
        insert(cache, elsewhere)
        XCTAssertEqual(cache.statistics.entries, 1)
        guard case .miss = cache.validate(tenant: first.session.tenantID, tokenHash: first.session.tokenHash, now: first.session.createdAt)
        else { return XCTFail("a session kept under a record of another tenant") }
        XCTAssertNotNil(hit(cache, elsewhere))
    }

    // MARK: Identifiers and hashes

    func testCanonicalIdentifiersPackAndUnpackExactly() {
        for _ in 0..<200 {
            let session = SessionID.random()
            let user = UserID.random()
            guard let packedSession = CompactID.pack(session), let packedUser = CompactID.pack(user) else {
                return XCTFail("a random id did not pack")
            }
            XCTAssertEqual(CompactID.unpack(packedSession) as SessionID, session)
            XCTAssertEqual(CompactID.unpack(packedUser) as UserID, user)
        }
        let body = String(repeating: "a", count: 25)
        XCTAssertNotNil(CompactID.pack(SessionID(unchecked: "se_" + body + "e")), "last digit 4: low bits clear")
        XCTAssertNil(CompactID.pack(SessionID(unchecked: "se_" + body + "b")), "last digit 1: not from 16 bytes")
        XCTAssertNil(CompactID.pack(SessionID(unchecked: "us_" + body + "a")), "wrong prefix")
        XCTAssertNil(CompactID.pack(SessionID(unchecked: "se_" + body)), "too short")
        XCTAssertNil(CompactID.pack(SessionID(unchecked: "se_" + body + "A")), "not base32")
    }

    func testSessionsWithNonCanonicalIdsOrHashesAreNotCachedButTheirTouchesAreKept() {
        let cache = SessionCache()
        var (odd, _) = sessionFixture()
        odd.session.id = SessionID(unchecked: "se_" + String(repeating: "a", count: 25) + "b")
        insert(cache, odd)
        XCTAssertEqual(cache.statistics.entries, 0)
        var short = sessionFixture().validated
        short.session.tokenHash = Array(short.session.tokenHash.prefix(20))
        insert(cache, short)
        XCTAssertEqual(cache.statistics.entries, 0)

        let at = odd.session.createdAt.adding(seconds: 3)
        cache.touch(tenant: odd.session.tenantID, session: odd.session.id, at: at)
        XCTAssertEqual(cache.pendingLastActive(odd.session.id), at)
        let normal = sessionFixture().validated
        cache.touch(tenant: normal.session.tenantID, session: normal.session.id, at: at)
        let taken = cache.takePendingTouches()
        XCTAssertEqual(Set(taken.map(\.sessionID)), [odd.session.id, normal.session.id])
        XCTAssertEqual(taken.first { $0.sessionID == normal.session.id }?.tenantID, normal.session.tenantID)
        // Restored touches come back, the newer of two winning.
        cache.touch(tenant: normal.session.tenantID, session: normal.session.id, at: at.adding(seconds: 10))
        cache.restore(taken)
        XCTAssertEqual(cache.pendingLastActive(normal.session.id), at.adding(seconds: 10))
        XCTAssertEqual(cache.pendingLastActive(odd.session.id), at)
    }

    func testTakenTouchesKeepEachSessionsTenant() {
        let cache = SessionCache()
        let tenants = [TenantID.random(), TenantID.random()]
        var expected: [SessionID: TenantID] = [:]
        let at = Timestamp(seconds: 1_750_000_000)
        for index in 0..<6 {
            let session = SessionID.random()
            expected[session] = tenants[index % 2]
            cache.touch(tenant: tenants[index % 2], session: session, at: at.adding(seconds: Int64(index)))
        }
        let taken = cache.takePendingTouches()
        XCTAssertEqual(taken.count, 6)
        for touch in taken { XCTAssertEqual(touch.tenantID, expected[touch.sessionID], "tenant of \(touch.sessionID)") }
        XCTAssertTrue(cache.takePendingTouches().isEmpty)
    }

    func testAPendingTouchNewerThanTheLoadIsKeptByTheInsert() {
        let cache = SessionCache()
        let (validated, _) = sessionFixture()
        let later = validated.session.createdAt.adding(seconds: 30)
        cache.touch(tenant: validated.session.tenantID, session: validated.session.id, at: later)
        insert(cache, validated)
        XCTAssertEqual(hit(cache, validated, at: later)?.session.lastActiveAt, later)
    }

    // MARK: The slab against a model

    func testRandomOperationsAgreeWithAPlainModel() {
        var generator = SystemRandomNumberGenerator()
        let cache = SessionCache(capacity: 40)
        let users = (0..<12).map { _ in UserID.random() }
        let tenant = TenantID.random()
        var live: [[UInt8]: ValidatedSession] = [:]
        var all: [ValidatedSession] = []
        for step in 0..<4000 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                var (validated, _) = sessionFixture(tenant: tenant, user: users.randomElement(using: &generator)!)
                validated.email = "user-\(validated.session.userID)@acme.test"
                insert(cache, validated)
                all.append(validated)
                live[validated.session.tokenHash] = validated
            case 5:
                let user = users.randomElement(using: &generator)!
                cache.invalidate(user: user)
                live = live.filter { $0.value.session.userID != user }
            default:
                guard let probe = all.randomElement(using: &generator) else { continue }
                let lookup = cache.validate(tenant: tenant, tokenHash: probe.session.tokenHash, now: probe.session.createdAt)
                switch lookup {
                case .hit(let answer):
                    XCTAssertNotNil(live[probe.session.tokenHash], "step \(step): a dropped session answered")
                    XCTAssertEqual(answer, probe.withoutDisplayFields, "step \(step)")
                case .miss:
                    // Not cached, or evicted: the model may still hold it.
                    live[probe.session.tokenHash] = nil
                case .invalid:
                    XCTFail("step \(step): a live session was refused")
                }
            }
            XCTAssertLessThanOrEqual(cache.statistics.entries, 40)
            XCTAssertLessThanOrEqual(cache.cachedUsers, min(users.count, cache.statistics.entries))
        }
    }
}
