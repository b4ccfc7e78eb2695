import XCTest

@testable import MoatCore

/// Last-active times: recorded in memory by Validate, shown by the Active
/// Sessions page at once, written by `flushLastActive`, kept when that
/// write fails.
final class SessionLastActiveTests: XCTestCase {
    static let memberEmail = "member@acme.test"

    struct Three {
        var env: SessionEnv
        var tenant: Tenant
        var first: SignInResult
        var second: SignInResult
        var third: SignInResult
        var start: Timestamp
    }

    /// Three sessions of one member, signed in a minute apart.
    func makeThree() async throws -> Three {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let start = env.clock.now()
        let first = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 60)
        let second = try await env.signIn(tenant, Self.memberEmail, client: Fixture.otherClient)
        env.clock.advance(seconds: 60)
        let third = try await env.signIn(tenant, Self.memberEmail)
        return Three(env: env, tenant: tenant, first: first, second: second, third: third, start: start)
    }

    func storedLastActive(_ t: Three, _ session: SignInResult) async throws -> Timestamp? {
        try await t.env.storedSession(t.tenant, session.session.id)?.lastActiveAt
    }

    func testListingShowsUnflushedActivityAndFlushWritesIt() async throws {
        let t = try await makeThree()
        let accounts = t.env.accounts
        let ref = t.tenant.slug
        let hour: Int64 = 3600
        let created = [t.start, t.start.adding(seconds: 60), t.start.adding(seconds: 120)]

        t.env.clock.advance(seconds: hour)  // t0 + 1 h (+ 2 min)
        let firstUse = t.env.clock.now()
        await assertSessionValid(accounts, ref, t.first.token)
        t.env.clock.advance(seconds: hour)
        let secondUse = t.env.clock.now()
        await assertSessionValid(accounts, ref, t.second.token)

        // Before any flush: memory has it, the store does not.
        XCTAssertEqual(accounts.sessionCache.pendingLastActive(t.first.session.id), firstUse)
        XCTAssertEqual(accounts.sessionCache.pendingLastActive(t.second.session.id), secondUse)
        XCTAssertNil(accounts.sessionCache.pendingLastActive(t.third.session.id))
        let storedFirst = try await storedLastActive(t, t.first)
        let storedSecond = try await storedLastActive(t, t.second)
        XCTAssertEqual(storedFirst, created[0])
        XCTAssertEqual(storedSecond, created[1])

        // Listed from the third session a minute later: the listing call is
        // activity of the third; the others show their unflushed activity.
        t.env.clock.advance(seconds: 60)
        let listedAt = t.env.clock.now()
        var listed = try await accounts.sessions.listSessions(tenant: t.tenant, token: t.third.token)
        XCTAssertEqual(listed.map(\.session.id), [t.third.session.id, t.second.session.id, t.first.session.id])
        XCTAssertEqual(listed.map(\.lastActiveAt), [listedAt, secondUse, firstUse])
        XCTAssertEqual(listed.map(\.current), [true, false, false])

        // Used again (a cache hit this time): first is newest of the others.
        t.env.clock.advance(seconds: hour)
        let thirdUse = t.env.clock.now()
        await assertSessionValid(accounts, ref, t.first.token)
        t.env.clock.advance(seconds: 60)
        let relistedAt = t.env.clock.now()
        listed = try await accounts.sessions.listSessions(tenant: t.tenant, token: t.second.token)
        XCTAssertEqual(listed.map(\.session.id), [t.second.session.id, t.first.session.id, t.third.session.id])
        XCTAssertEqual(listed.map(\.lastActiveAt), [relistedAt, thirdUse, listedAt])
        XCTAssertEqual(listed.map(\.current), [true, false, false])
        // Still nothing in the store.
        let stillFirst = try await storedLastActive(t, t.first)
        XCTAssertEqual(stillFirst, created[0])

        // The flush writes the three, once.
        let flushed = try await accounts.sessions.flushLastActive()
        XCTAssertEqual(flushed, 3)
        let afterFirst = try await storedLastActive(t, t.first)
        let afterSecond = try await storedLastActive(t, t.second)
        let afterThird = try await storedLastActive(t, t.third)
        XCTAssertEqual(afterFirst, thirdUse)
        XCTAssertEqual(afterSecond, relistedAt)
        XCTAssertEqual(afterThird, listedAt)
        XCTAssertNil(accounts.sessionCache.pendingLastActive(t.first.session.id))
        let again = try await accounts.sessions.flushLastActive()
        XCTAssertEqual(again, 0)

        // The listing is unchanged by the flush, and a restarted daemon
        // (empty memory) sees the same.
        let expected = [relistedAt, thirdUse, listedAt]
        let relisted = try await accounts.sessions.listSessions(tenant: t.tenant, token: t.second.token)
        XCTAssertEqual(relisted.map(\.lastActiveAt), expected)
        let restarted = try await t.env.freshService().sessions.listSessions(tenant: t.tenant, token: t.second.token)
        XCTAssertEqual(restarted.map(\.lastActiveAt), expected)
        XCTAssertEqual(restarted.map(\.current), [true, false, false])
    }

    func testActivityWithinTheGranularityIsNotRecordedAgain() async throws {
        let t = try await makeThree()
        let accounts = t.env.accounts
        t.env.clock.advance(seconds: 10)
        let use = t.env.clock.now()
        await assertSessionValid(accounts, t.tenant.slug, t.first.token)
        _ = try await accounts.sessions.flushLastActive()
        t.env.clock.advance(milliseconds: 400)
        await assertSessionValid(accounts, t.tenant.slug, t.first.token)
        XCTAssertNil(accounts.sessionCache.pendingLastActive(t.first.session.id))
        let count = try await accounts.sessions.flushLastActive()
        XCTAssertEqual(count, 0)
        let stored = try await storedLastActive(t, t.first)
        XCTAssertEqual(stored, use)
    }

    func testFailedFlushKeepsTheTouchesForTheNextOne() async throws {
        let t = try await makeThree()
        let accounts = t.env.accounts
        let ref = t.tenant.slug
        t.env.clock.advance(seconds: 3600)
        let use = t.env.clock.now()
        await assertSessionValid(accounts, ref, t.third.token)
        await assertSessionValid(accounts, ref, t.second.token)

        t.env.store.failNextWrites(1)
        do {
            try await accounts.sessions.flushLastActive()
            XCTFail("the flush succeeded although its write failed")
        } catch is SessionStoreFailure {
            // expected
        }
        XCTAssertEqual(t.env.store.failedWrites, 1)
        // Nothing written; everything still pending and still shown.
        XCTAssertEqual(accounts.sessionCache.pendingLastActive(t.third.session.id), use)
        XCTAssertEqual(accounts.sessionCache.pendingLastActive(t.second.session.id), use)
        let stored = try await storedLastActive(t, t.third)
        XCTAssertEqual(stored, t.start.adding(seconds: 120))
        t.env.clock.advance(seconds: 1)
        let listedAt = t.env.clock.now()
        let listed = try await accounts.sessions.listSessions(tenant: t.tenant, token: t.first.token)
        XCTAssertEqual(listed.first(where: { $0.session.id == t.third.session.id })?.lastActiveAt, use)

        // Newer activity between the failure and the retry wins.
        t.env.clock.advance(seconds: 60)
        let later = t.env.clock.now()
        await assertSessionValid(accounts, ref, t.second.token)

        // Three: the two validated, and the listing's own activity.
        let flushed = try await accounts.sessions.flushLastActive()
        XCTAssertEqual(flushed, 3)
        let thirdStored = try await storedLastActive(t, t.third)
        let secondStored = try await storedLastActive(t, t.second)
        let firstStored = try await storedLastActive(t, t.first)
        XCTAssertEqual(thirdStored, use)
        XCTAssertEqual(secondStored, later)
        XCTAssertEqual(firstStored, listedAt)
        XCTAssertNil(accounts.sessionCache.pendingLastActive(t.third.session.id))
        XCTAssertNil(accounts.sessionCache.pendingLastActive(t.second.session.id))
    }

    func testRestoreNeverOverwritesNewerActivity() {
        let cache = SessionCache()
        let tenant = TenantID.random()
        let session = SessionID.random()
        let t1 = Timestamp(seconds: 1_750_000_000)
        let t2 = t1.adding(seconds: 30)
        cache.touch(tenant: tenant, session: session, at: t1)
        let taken = cache.takePendingTouches()
        XCTAssertEqual(taken.map(\.at), [t1])
        XCTAssertNil(cache.pendingLastActive(session))
        cache.touch(tenant: tenant, session: session, at: t2)
        cache.restore(taken)
        XCTAssertEqual(cache.pendingLastActive(session), t2)
        // And an older touch never lowers a pending one.
        cache.touch(tenant: tenant, session: session, at: t1)
        XCTAssertEqual(cache.pendingLastActive(session), t2)
    }

    func testFlushNeverLowersTheStoredTime() async throws {
        let t = try await makeThree()
        let accounts = t.env.accounts
        t.env.clock.advance(seconds: 100)
        await assertSessionValid(accounts, t.tenant.slug, t.first.token)
        try await accounts.sessions.flushLastActive()
        let later = t.env.clock.now()
        // A stale touch (e.g. restored by another host's failed flush).
        try await t.env.store.write { writer in
            try writer.touchSessions([
                SessionCache.Touch(tenantID: t.tenant.id, sessionID: t.first.session.id, at: t.start)
            ])
        }
        let stored = try await storedLastActive(t, t.first)
        XCTAssertEqual(stored, later)
    }
}
