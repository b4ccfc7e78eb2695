import XCTest

@testable import MoatCore

/// Idle timeout and absolute lifetime (tenant policy; defaults 14 and 30
/// days), judged with the manual clock, from the cache and from the store.
final class SessionExpiryTests: XCTestCase {
    static let day: Int64 = 86400
    static let memberEmail = "member@acme.test"

    func testDefaultsAreFourteenAndThirtyDays() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        XCTAssertEqual(tenant.policy.sessionIdleTimeoutSeconds, 14 * Self.day)
        XCTAssertEqual(tenant.policy.sessionAbsoluteLifetimeSeconds, 30 * Self.day)
        let signedIn = try await env.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let start = env.clock.now()
        XCTAssertEqual(signedIn.session.absoluteExpiresAt, start.adding(seconds: 30 * Self.day))
        XCTAssertEqual(signedIn.session.expiresAt(), start.adding(seconds: 14 * Self.day))
    }

    func testIdleTimeoutEndsTheSessionInTheCacheAndInTheStore() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let ref = tenant.slug
        let idle = try await env.signIn(tenant, Self.memberEmail)
        let active = try await env.signIn(tenant, Self.memberEmail, client: Fixture.otherClient)
        for token in [idle.token, active.token] {
            await assertSessionValid(accounts, ref, token)
            assertSessionCached(accounts, ref, token)
        }

        // Activity within the window extends it.
        env.clock.advance(seconds: 14 * Self.day - 1)
        await assertSessionValid(accounts, ref, active.token, session: active.session.id, "used just in time")
        try await accounts.sessions.flushLastActive()

        // Past the idle timeout of the unused one.
        env.clock.advance(seconds: 2)
        assertSessionNotAcceptedFromCache(accounts, ref, idle.token, "idle session (cached)")
        await assertSessionRejected(accounts, ref, idle.token, "idle session")
        await assertSessionRejected(env.freshService(), ref, idle.token, "idle session, from the store")
        accounts.sessionCache.invalidateAll()
        await assertSessionRejected(accounts, ref, idle.token, "idle session, cache dropped")

        // The used one lives on, from the cache and from the store.
        await assertSessionValid(accounts, ref, active.token, session: active.session.id, "extended session")
        await assertSessionValid(env.freshService(), ref, active.token, session: active.session.id, "extended (store)")

        // ... until its own idle timeout since its last use (the validate
        // just above, at t0 + 14 d + 1 s).
        try await accounts.sessions.flushLastActive()
        env.clock.advance(seconds: 14 * Self.day - 1)
        await assertSessionValid(env.freshService(), ref, active.token, "last second of the extended window")
        env.clock.advance(seconds: 2)
        assertSessionNotAcceptedFromCache(accounts, ref, active.token, "idle again (cached)")
        await assertSessionRejected(accounts, ref, active.token, "idle again")
        await assertSessionRejected(env.freshService(), ref, active.token, "idle again, from the store")
    }

    /// Activity recorded only in memory (not flushed yet) also keeps a
    /// session alive when the cache entry itself is gone.
    func testUnflushedActivityCountsWhenReloadingFromTheStore() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let signedIn = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 10 * Self.day)
        await assertSessionValid(accounts, tenant.slug, signedIn.token)
        env.clock.advance(seconds: 10 * Self.day)
        // The store still says "last active 20 days ago"; the pending touch
        // says 10: the session is live.
        accounts.sessionCache.invalidateAll()
        await assertSessionValid(accounts, tenant.slug, signedIn.token, session: signedIn.session.id, "reloaded")
    }

    func testAbsoluteLifetimeEndsEvenAnAlwaysActiveSession() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let ref = tenant.slug
        let signedIn = try await env.signIn(tenant, Self.memberEmail)
        let start = env.clock.now()
        let end = start.adding(seconds: 30 * Self.day)

        // Every hour for 30 days (flushing once a day).
        var hours = 0
        while env.clock.now().adding(seconds: 3600) < end {
            env.clock.advance(seconds: 3600)
            hours += 1
            guard await assertSessionValid(accounts, ref, signedIn.token, "hour \(hours)") != nil else { return }
            if hours % 24 == 0 { try await accounts.sessions.flushLastActive() }
        }
        XCTAssertEqual(hours, 719)
        env.clock.advance(seconds: 3600 - 1)
        XCTAssertEqual(env.clock.now(), end.adding(seconds: -1))
        await assertSessionValid(accounts, ref, signedIn.token, "one second before the end")
        try await accounts.sessions.flushLastActive()

        env.clock.advance(seconds: 2)
        assertSessionNotAcceptedFromCache(accounts, ref, signedIn.token, "past 30 days (cached)")
        await assertSessionRejected(accounts, ref, signedIn.token, "past 30 days")
        await assertSessionRejected(env.freshService(), ref, signedIn.token, "past 30 days, from the store")
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await accounts.authenticate(tenant: tenant.id, token: signedIn.token)
        }
        // Not listed to the user any more.
        let fresh = try await env.signIn(tenant, Self.memberEmail)
        let listed = try await accounts.sessions.listSessions(tenant: tenant, token: fresh.token)
        XCTAssertEqual(listed.map(\.session.id), [fresh.session.id])
    }

    func testExpiredSessionsAreRefusedBeforeAnyCleanup() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let ref = tenant.slug
        // Never validated, so never cached.
        let signedIn = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 14 * Self.day + 1)

        // The row is still there, not revoked: no cleanup has run.
        let row = try await env.storedSession(tenant, signedIn.session.id)
        XCTAssertNotNil(row)
        XCTAssertNil(row?.revokedAt)

        await assertSessionRejected(accounts, ref, signedIn.token, "expired, never cached")
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await accounts.sessions.listSessions(tenant: tenant, token: signedIn.token)
        }
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await accounts.sessions.revokeOtherSessions(tenant: tenant, token: signedIn.token, client: Fixture.client)
        }
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await accounts.signIn.signOut(tenant: tenant, token: signedIn.token)
        }
        XCTAssertEqual(accounts.sessionCache.statistics.entries, 0, "an expired session was cached")
    }

    /// The session calls (list, sign out, revoke) must agree with Validate
    /// about whether a session is live. Activity Validate recorded in memory
    /// (flushed every few seconds, or later when the store fails) keeps the
    /// session alive for Validate; a sign-out of that very session must not
    /// then be refused as SESSION_INVALID while the token keeps working.
    func testSessionCallsAgreeWithValidateAboutUnflushedActivity() async throws {
        let env = try SessionEnv()
        var (tenant, _) = try await env.makeTenant()
        tenant = try await env.setPolicy(tenant) { $0.sessionIdleTimeoutSeconds = 3600 }
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let ref = tenant.slug
        let signedIn = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 50 * 60)
        await assertSessionValid(accounts, ref, signedIn.token, "after 50 minutes")
        env.clock.advance(seconds: 20 * 60)
        // Last used 20 minutes ago, idle timeout 1 hour: live.
        await assertSessionValid(accounts, ref, signedIn.token, "20 minutes after its last use")

        do {
            let listed = try await accounts.sessions.listSessions(tenant: tenant, token: signedIn.token)
            XCTAssertEqual(listed.map(\.session.id), [signedIn.session.id])
        } catch {
            XCTFail("listSessions refused a session Validate accepts: \(error)")
        }
        do {
            try await accounts.signIn.signOut(tenant: tenant, token: signedIn.token)
        } catch {
            XCTFail("signOut refused a session Validate accepts: \(error)")
        }
        await assertSessionRejected(accounts, ref, signedIn.token, "after signing out")
    }

    /// The session cap counts the sessions Validate considers live. Two
    /// sessions kept alive by activity not yet flushed are live; a third
    /// sign-in with a cap of 2 must end the oldest of them.
    func testSessionCapCountsSessionsKeptAliveByUnflushedActivity() async throws {
        let env = try SessionEnv()
        var (tenant, _) = try await env.makeTenant()
        tenant = try await env.setPolicy(tenant) {
            $0.sessionIdleTimeoutSeconds = 3600
            $0.maxSessionsPerUser = 2
        }
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let ref = tenant.slug
        let oldest = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 1)
        let second = try await env.signIn(tenant, Self.memberEmail, client: Fixture.otherClient)
        env.clock.advance(seconds: 50 * 60)
        await assertSessionValid(accounts, ref, oldest.token, "oldest, 50 minutes in")
        await assertSessionValid(accounts, ref, second.token, "second, 50 minutes in")
        env.clock.advance(seconds: 20 * 60)
        // Both used 20 minutes ago (not flushed yet), idle timeout 1 hour: live.
        await assertSessionValid(accounts, ref, oldest.token, session: oldest.session.id, "oldest")
        await assertSessionValid(accounts, ref, second.token, session: second.session.id, "second")

        let third = try await env.signIn(tenant, Self.memberEmail)
        await assertSessionRejected(accounts, ref, oldest.token, "oldest session past the cap of 2")
        await assertSessionValid(accounts, ref, second.token, session: second.session.id, "second")
        await assertSessionValid(accounts, ref, third.token, session: third.session.id, "new")
        let live = try await accounts.sessions.listSessions(tenant: tenant, token: third.token)
        XCTAssertLessThanOrEqual(live.count, 2, "more live sessions than the cap")
    }
}
