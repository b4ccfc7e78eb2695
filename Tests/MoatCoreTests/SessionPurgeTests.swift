import XCTest

@testable import MoatCore

/// `purgeEndedSessions`: deletes sessions that ended (revoked, idle,
/// past their absolute lifetime) longer ago than the retention, and nothing
/// else.
final class SessionPurgeTests: XCTestCase {
    static let day: Int64 = 86400
    static let memberEmail = "member@acme.test"

    func testPurgeDeletesOnlySessionsEndedBeforeTheRetention() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let (other, _) = try await env.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        let accounts = env.accounts
        let ref = tenant.slug
        let t0 = env.clock.now()
        func at(_ days: Int64) { env.clock.advance(seconds: t0.adding(seconds: days * Self.day).seconds - env.clock.now().seconds) }

        // Day 0.
        let revokedOld = try await env.signIn(tenant, Self.memberEmail)
        let idleOld = try await env.signIn(tenant, Self.memberEmail)
        let absoluteOld = try await env.signIn(tenant, Self.memberEmail)
        let otherTenantOld = try await env.signIn(other, "owner@globex.test", Fixture.ownerPassword)
        // Day 1: one signed out.
        at(1)
        try await accounts.signIn.signOut(tenant: tenant, token: revokedOld.token)
        // absoluteOld is kept active every ~10 days, so only its 30-day
        // lifetime ends it.
        at(10)
        await assertSessionValid(accounts, ref, absoluteOld.token, "day 10")
        try await accounts.sessions.flushLastActive()
        // Day 20: one that idles out on day 34 (after the cutoff), one kept active.
        at(20)
        await assertSessionValid(accounts, ref, absoluteOld.token, "day 20")
        let idleRecent = try await env.signIn(tenant, Self.memberEmail)
        let liveActive = try await env.signIn(tenant, Self.memberEmail)
        try await accounts.sessions.flushLastActive()
        at(29)
        await assertSessionValid(accounts, ref, absoluteOld.token, "day 29")
        try await accounts.sessions.flushLastActive()
        // Day 30.
        at(30)
        let revokedRecent = try await env.signIn(tenant, Self.memberEmail)
        await assertSessionValid(accounts, ref, liveActive.token, "day 30")
        try await accounts.sessions.flushLastActive()
        // Day 35: revoked after the cutoff.
        at(35)
        try await accounts.signIn.signOut(tenant: tenant, token: revokedRecent.token)
        // Day 39: a new one.
        at(39)
        let liveNew = try await env.signIn(tenant, Self.memberEmail)

        // Day 40, retention 7 days: the cutoff is day 33.
        at(40)
        XCTAssertEqual(env.clock.now(), t0.adding(seconds: 40 * Self.day))
        let deleted = try await accounts.sessions.purgeEndedSessions(retentionSeconds: 7 * Self.day)

        let gone = [
            ("signed out on day 1", revokedOld), ("idle since day 14", idleOld),
            ("lifetime ended on day 30", absoluteOld), ("other tenant, idle since day 14", otherTenantOld),
        ]
        let kept = [
            ("idle since day 34", idleRecent), ("active on day 30", liveActive),
            ("signed out on day 35", revokedRecent), ("new on day 39", liveNew),
        ]
        XCTAssertEqual(deleted, gone.count)
        for (name, signedIn) in gone {
            let row = try await env.storedSession(signedIn.session.tenantID == other.id ? other : tenant, signedIn.session.id)
            XCTAssertNil(row, "\(name) was not deleted")
        }
        for (name, signedIn) in kept {
            let row = try await env.storedSession(tenant, signedIn.session.id)
            XCTAssertNotNil(row, "\(name) was deleted")
        }
        // The live ones still validate; the recently ended ones stay refused.
        await assertSessionValid(accounts, ref, liveActive.token, session: liveActive.session.id, "active on day 30")
        await assertSessionValid(accounts, ref, liveNew.token, session: liveNew.session.id, "new on day 39")
        await assertSessionRejected(accounts, ref, idleRecent.token, "idle since day 34")
        await assertSessionRejected(accounts, ref, revokedRecent.token, "signed out on day 35")
        // Nothing more to do a second time.
        let again = try await accounts.sessions.purgeEndedSessions(retentionSeconds: 7 * Self.day)
        XCTAssertEqual(again, 0)
    }

    func testPurgeWithZeroRetentionKeepsLiveSessions() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        try await env.makeUser(tenant, email: Self.memberEmail)
        let live = try await env.signIn(tenant, Self.memberEmail)
        let ended = try await env.signIn(tenant, Self.memberEmail)
        try await env.accounts.signIn.signOut(tenant: tenant, token: ended.token)
        env.clock.advance(seconds: 1)
        let deleted = try await env.accounts.sessions.purgeEndedSessions(retentionSeconds: 0)
        XCTAssertEqual(deleted, 1)
        let liveRow = try await env.storedSession(tenant, live.session.id)
        XCTAssertNotNil(liveRow)
        await assertSessionValid(env.accounts, tenant.slug, live.token, session: live.session.id)
    }

    /// A session that Validate keeps accepting (activity recorded in memory,
    /// not flushed yet) has not ended: the purge must not delete its row,
    /// or the user can no longer list or sign out a token that still works.
    func testPurgeKeepsSessionsKeptAliveByUnflushedActivity() async throws {
        let env = try SessionEnv()
        var (tenant, _) = try await env.makeTenant()
        tenant = try await env.setPolicy(tenant) { $0.sessionIdleTimeoutSeconds = 3600 }
        try await env.makeUser(tenant, email: Self.memberEmail)
        let accounts = env.accounts
        let ref = tenant.slug
        let signedIn = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 50 * 60)
        await assertSessionValid(accounts, ref, signedIn.token, "50 minutes in")
        env.clock.advance(seconds: 20 * 60)
        await assertSessionValid(accounts, ref, signedIn.token, "used 20 minutes ago")

        let deleted = try await accounts.sessions.purgeEndedSessions(retentionSeconds: 0)
        XCTAssertEqual(deleted, 0, "a live session was purged")
        let row = try await env.storedSession(tenant, signedIn.session.id)
        XCTAssertNotNil(row, "the row of a session Validate accepts is gone")
        await assertSessionValid(accounts, ref, signedIn.token, session: signedIn.session.id, "after the purge")
        do {
            try await accounts.signIn.signOut(tenant: tenant, token: signedIn.token)
        } catch {
            XCTFail("cannot sign out a session Validate accepts: \(error)")
        }
        await assertSessionRejected(accounts, ref, signedIn.token, "after signing out")
    }
}
