import XCTest

@testable import MoatCore

/// Every path that revokes a session must drop it from the Validate cache
/// before it returns (DESIGN §6: a revocation is visible to every later
/// Validate the moment the revoking call returns). Each test first makes the
/// victim's token CACHED (a second `validateCached` is a hit), revokes, then
/// checks that neither `validateCached` nor `validate` accepts it, while the
/// sessions the path keeps still validate.
final class SessionRevocationTests: XCTestCase {
    struct Setup {
        var env: SessionEnv
        var tenant: Tenant
        var owner: User
        var member: User
        var ownerToken: String
        /// The member's first session (the oldest).
        var victim: SignInResult
        /// The member's second session.
        var keeper: SignInResult

        var accounts: AccountService { env.accounts }
        var ref: String { tenant.slug }
    }

    static let memberEmail = "member@acme.test"

    func makeSetup() async throws -> Setup {
        let env = try SessionEnv()
        let (tenant, owner) = try await env.makeTenant()
        let member = try await env.makeUser(tenant, email: Self.memberEmail)
        let ownerToken = try await env.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword).token
        env.clock.advance(seconds: 1)
        let victim = try await env.signIn(tenant, Self.memberEmail)
        env.clock.advance(seconds: 1)
        let keeper = try await env.signIn(tenant, Self.memberEmail, client: Fixture.otherClient)
        env.clock.advance(seconds: 1)
        let setup = Setup(
            env: env, tenant: tenant, owner: owner, member: member, ownerToken: ownerToken, victim: victim,
            keeper: keeper)
        try await warm(setup)
        return setup
    }

    /// Validates every token so it is cached, and checks that it is.
    func warm(_ s: Setup, file: StaticString = #filePath, line: UInt = #line) async throws {
        for (name, token) in [("owner", s.ownerToken), ("victim", s.victim.token), ("keeper", s.keeper.token)] {
            await assertSessionValid(s.accounts, s.ref, token, name, file: file, line: line)
            assertSessionCached(s.accounts, s.ref, token, name, file: file, line: line)
        }
        XCTAssertGreaterThanOrEqual(s.accounts.sessionCache.statistics.entries, 3, file: file, line: line)
    }

    func assertRevokedInStore(_ s: Setup, _ id: SessionID, file: StaticString = #filePath, line: UInt = #line)
        async throws
    {
        let row = try await s.env.storedSession(s.tenant, id)
        XCTAssertNotNil(row?.revokedAt, "session \(id) is not revoked in the store", file: file, line: line)
    }

    // MARK: One test per path

    func testSignOutDropsTheCachedSession() async throws {
        let s = try await makeSetup()
        try await s.accounts.signIn.signOut(tenant: s.tenant, token: s.victim.token)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "signed-out session")
        try await assertRevokedInStore(s, s.victim.session.id)
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "member's other session")
        assertSessionCached(s.accounts, s.ref, s.keeper.token, "member's other session")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner")
    }

    func testRevokeSessionDropsTheCachedSession() async throws {
        let s = try await makeSetup()
        try await s.accounts.sessions.revokeSession(
            tenant: s.tenant, token: s.keeper.token, sessionID: s.victim.session.id.rawValue, client: Fixture.client)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "revoked session")
        try await assertRevokedInStore(s, s.victim.session.id)
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "calling session")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner")
    }

    func testRevokeOwnCurrentSessionDropsIt() async throws {
        let s = try await makeSetup()
        try await s.accounts.sessions.revokeSession(
            tenant: s.tenant, token: s.victim.token, sessionID: s.victim.session.id.rawValue, client: Fixture.client)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "self-revoked session")
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "other session")
    }

    func testRevokeOtherSessionsDropsThemAndKeepsTheCaller() async throws {
        let s = try await makeSetup()
        let count = try await s.accounts.sessions.revokeOtherSessions(tenant: s.tenant, token: s.keeper.token, client: Fixture.client)
        XCTAssertEqual(count, 1)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "other session")
        try await assertRevokedInStore(s, s.victim.session.id)
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "calling session")
        assertSessionCached(s.accounts, s.ref, s.keeper.token, "calling session")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner (another user)")
    }

    func testRevokeAllSessionsByAdministratorDropsThem() async throws {
        let s = try await makeSetup()
        let count = try await s.accounts.sessions.revokeAllSessions(
            tenant: s.tenant, actor: .administrator, userID: s.member.id.rawValue, client: Fixture.client)
        XCTAssertEqual(count, 2)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "victim")
        await assertSessionRejected(s.accounts, s.ref, s.keeper.token, "keeper")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner (another user)")
        assertSessionCached(s.accounts, s.ref, s.ownerToken, "owner (another user)")
    }

    func testRevokeAllSessionsByOwnerDropsThem() async throws {
        let s = try await makeSetup()
        let owner = try await s.env.actor(s.tenant, token: s.ownerToken)
        let count = try await s.accounts.sessions.revokeAllSessions(
            tenant: s.tenant, actor: owner, userID: s.member.id.rawValue, client: Fixture.client)
        XCTAssertEqual(count, 2)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "victim")
        await assertSessionRejected(s.accounts, s.ref, s.keeper.token, "keeper")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner")
    }

    func testChangePasswordWithRevokeDropsTheOtherSessions() async throws {
        let s = try await makeSetup()
        let count = try await s.accounts.passwords.changePassword(
            tenant: s.tenant, token: s.keeper.token, currentPassword: Fixture.memberPassword,
            newPassword: Fixture.newPassword, revokeOtherSessions: true, client: Fixture.client)
        XCTAssertEqual(count, 1)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "other session after password change")
        try await assertRevokedInStore(s, s.victim.session.id)
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "changing session")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner")
    }

    func testChangePasswordWithoutRevokeKeepsEverySession() async throws {
        let s = try await makeSetup()
        let count = try await s.accounts.passwords.changePassword(
            tenant: s.tenant, token: s.keeper.token, currentPassword: Fixture.memberPassword,
            newPassword: Fixture.newPassword, revokeOtherSessions: false, client: Fixture.client)
        XCTAssertEqual(count, 0)
        await assertSessionValid(s.accounts, s.ref, s.victim.token, session: s.victim.session.id, "other session")
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "changing session")
    }

    func testResetPasswordDropsEverySessionOfTheUser() async throws {
        let s = try await makeSetup()
        try await s.accounts.passwords.requestPasswordReset(tenant: s.tenant, email: Self.memberEmail, client: Fixture.client)
        let resetToken = try XCTUnwrap(try s.env.world.lastResetToken(email: Self.memberEmail))
        let count = try await s.accounts.passwords.resetPassword(tenant: s.tenant, token: resetToken, newPassword: Fixture.newPassword)
        XCTAssertEqual(count, 2)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "victim after reset")
        await assertSessionRejected(s.accounts, s.ref, s.keeper.token, "keeper after reset")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner (another user)")
        assertSessionCached(s.accounts, s.ref, s.ownerToken, "owner (another user)")
    }

    func testDisablingTheUserDropsEverySession() async throws {
        let s = try await makeSetup()
        _ = try await s.accounts.users.setUserEnabled(
            tenant: s.tenant, actor: .administrator, id: s.member.id.rawValue, enabled: false)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "victim of disabled user")
        await assertSessionRejected(s.accounts, s.ref, s.keeper.token, "keeper of disabled user")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner")
        // Enabling again does not bring the revoked sessions back.
        _ = try await s.accounts.users.setUserEnabled(
            tenant: s.tenant, actor: .administrator, id: s.member.id.rawValue, enabled: true)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "victim after re-enable")
        await assertSessionRejected(s.accounts, s.ref, s.keeper.token, "keeper after re-enable")
    }

    func testSessionCapDropsTheOldestCachedSession() async throws {
        let s = try await makeSetup()
        let capped = try await s.env.setPolicy(s.tenant) { $0.maxSessionsPerUser = 2 }
        // The policy change emptied the tenant directory: warm again.
        try await warm(s)
        let newest = try await s.accounts.signIn.signIn(
            tenant: capped, email: Self.memberEmail, password: Fixture.memberPassword, client: Fixture.client)
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "oldest session past the cap")
        try await assertRevokedInStore(s, s.victim.session.id)
        await assertSessionValid(s.accounts, s.ref, s.keeper.token, session: s.keeper.session.id, "second session")
        assertSessionCached(s.accounts, s.ref, s.keeper.token, "second session")
        await assertSessionValid(s.accounts, s.ref, newest.token, session: newest.session.id, "new session")
        await assertSessionValid(s.accounts, s.ref, s.ownerToken, "owner")
    }

    /// The same checks by tenant id instead of slug: the cache must not
    /// depend on how the tenant was named.
    func testRevocationIsSeenWhateverTheTenantReference() async throws {
        let s = try await makeSetup()
        let byID = s.tenant.id.rawValue
        await assertSessionValid(s.accounts, byID, s.victim.token, "by id")
        assertSessionCached(s.accounts, byID, s.victim.token, "by id")
        try await s.accounts.signIn.signOut(tenant: s.tenant, token: s.victim.token)
        await assertSessionRejected(s.accounts, byID, s.victim.token, "by id")
        await assertSessionRejected(s.accounts, s.ref, s.victim.token, "by slug")
    }
}
