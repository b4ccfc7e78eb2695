import XCTest

@testable import MoatCore

/// Sessions do not cross tenants or users, and only owners/admins (and an
/// owner's sessions only owners) may sign a user out everywhere.
final class SessionIsolationTests: XCTestCase {
    struct Pair {
        var env: SessionEnv
        var alpha: Tenant
        var beta: Tenant
        var alphaOwner: User
        var alphaAdmin: User
        var alphaOwnerToken: String
        var alphaAdminToken: String
        var alphaMember: SignInResult
        var alphaOther: SignInResult
        var betaOwner: SignInResult

        var accounts: AccountService { env.accounts }
    }

    func makePair() async throws -> Pair {
        let env = try SessionEnv()
        let (alpha, alphaOwner) = try await env.makeTenant(slug: "alpha", ownerEmail: "owner@alpha.test")
        let (beta, _) = try await env.makeTenant(slug: "beta", ownerEmail: "owner@beta.test")
        let admin = try await env.makeUser(alpha, email: "admin@alpha.test", password: Fixture.adminPassword, role: .admin)
        try await env.makeUser(alpha, email: "member@alpha.test")
        try await env.makeUser(alpha, email: "other@alpha.test")
        return Pair(
            env: env, alpha: alpha, beta: beta, alphaOwner: alphaOwner, alphaAdmin: admin,
            alphaOwnerToken: try await env.signIn(alpha, "owner@alpha.test", Fixture.ownerPassword).token,
            alphaAdminToken: try await env.signIn(alpha, "admin@alpha.test", Fixture.adminPassword).token,
            alphaMember: try await env.signIn(alpha, "member@alpha.test"),
            alphaOther: try await env.signIn(alpha, "other@alpha.test"),
            betaOwner: try await env.signIn(beta, "owner@beta.test", Fixture.ownerPassword))
    }

    func testATokenOfOneTenantIsInvalidInAnother() async throws {
        let p = try await makePair()
        let accounts = p.accounts
        // Both tenants resolved, so validateCached can answer for either.
        _ = try await accounts.tenant(reference: "alpha")
        _ = try await accounts.tenant(reference: "beta")
        let token = p.alphaMember.token

        // Uncached: the store path refuses it.
        for reference in ["beta", p.beta.id.rawValue] {
            await assertSessionRejected(accounts, reference, token, "alpha token in beta (uncached)")
        }
        XCTAssertEqual(accounts.sessionCache.statistics.entries, 0)

        // Cached at home: still refused in beta, from the cache too.
        await assertSessionValid(accounts, "alpha", token, session: p.alphaMember.session.id, "at home")
        assertSessionCached(accounts, "alpha", token, "at home")
        for reference in ["beta", p.beta.id.rawValue] {
            switch accounts.validateCached(tenantReference: reference, token: token) {
            case .failure(let error)?:
                XCTAssertEqual(error.kind, .unauthenticated)
                XCTAssertEqual(error.reason, "SESSION_INVALID")
            case .success?:
                XCTFail("validateCached accepted an alpha token in beta")
            case nil:
                XCTFail("validateCached had the token cached but did not answer for beta")
            }
            await assertSessionRejected(accounts, reference, token, "alpha token in beta (cached)")
        }
        // And the refusal did not evict or spoil it at home.
        assertSessionCached(accounts, "alpha", token, "at home, after the refusals")
        await assertSessionValid(accounts, p.alpha.id.rawValue, token, session: p.alphaMember.session.id, "by id")

        // The other way round.
        await assertSessionValid(accounts, "beta", p.betaOwner.token, "beta at home")
        await assertSessionRejected(accounts, "alpha", p.betaOwner.token, "beta token in alpha (cached)")
        await assertSessionRejected(p.env.freshService(), "alpha", p.betaOwner.token, "beta token in alpha (store)")
    }

    func testRevokingAnotherUsersSessionIsNotFound() async throws {
        let p = try await makePair()
        let accounts = p.accounts
        let victim = p.alphaOther
        await assertSessionValid(accounts, "alpha", victim.token)
        assertSessionCached(accounts, "alpha", victim.token)
        let before = try await p.env.world.snapshot()

        let foreignIDs = [
            victim.session.id.rawValue,  // same tenant, another user
            p.betaOwner.session.id.rawValue,  // another tenant
            SessionID.random().rawValue,  // nobody's
            "se_not-an-id",  // malformed
            victim.session.tokenHash.map { String(format: "%02x", $0) }.joined(),  // not an id at all
        ]
        for id in foreignIDs {
            await assertDomainError(.notFound, "SESSION_NOT_FOUND") {
                try await accounts.sessions.revokeSession(
                    tenant: p.alpha, token: p.alphaMember.token, sessionID: id, client: Fixture.client)
            }
        }
        // Even an owner may not end someone else's session this way.
        await assertDomainError(.notFound, "SESSION_NOT_FOUND") {
            try await accounts.sessions.revokeSession(
                tenant: p.alpha, token: p.alphaOwnerToken, sessionID: victim.session.id.rawValue, client: Fixture.client)
        }
        try await assertUnchanged(p.env.world, since: before)
        assertSessionCached(accounts, "alpha", victim.token, "victim, cached")
        await assertSessionValid(accounts, "alpha", victim.token, session: victim.session.id, "victim")
        await assertSessionValid(p.env.freshService(), "alpha", victim.token, session: victim.session.id, "victim (store)")
        await assertSessionValid(accounts, "beta", p.betaOwner.token, session: p.betaOwner.session.id, "beta owner")

        // An own session already ended is NOT_FOUND too.
        let second = try await p.env.signIn(p.alpha, "member@alpha.test")
        try await accounts.signIn.signOut(tenant: p.alpha, token: second.token)
        await assertDomainError(.notFound, "SESSION_NOT_FOUND") {
            try await accounts.sessions.revokeSession(
                tenant: p.alpha, token: p.alphaMember.token, sessionID: second.session.id.rawValue, client: Fixture.client)
        }
        // A token of another tenant cannot call it at all.
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await accounts.sessions.revokeSession(
                tenant: p.alpha, token: p.betaOwner.token, sessionID: p.betaOwner.session.id.rawValue,
                client: Fixture.client)
        }
        await assertSessionValid(accounts, "beta", p.betaOwner.token, session: p.betaOwner.session.id, "beta owner")
    }

    func testAMemberCannotRevokeAllSessions() async throws {
        let p = try await makePair()
        let accounts = p.accounts
        let member = try await p.env.actor(p.alpha, token: p.alphaMember.token)
        for token in [p.alphaOwnerToken, p.alphaOther.token] { await assertSessionValid(accounts, "alpha", token) }
        let before = try await p.env.world.snapshot()
        for target in [p.alphaOwner.id, p.alphaOther.user.id, p.alphaMember.user.id] {
            await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
                try await accounts.sessions.revokeAllSessions(
                    tenant: p.alpha, actor: member, userID: target.rawValue, client: Fixture.client)
            }
        }
        try await assertUnchanged(p.env.world, since: before)
        assertSessionCached(accounts, "alpha", p.alphaOwnerToken, "owner")
        assertSessionCached(accounts, "alpha", p.alphaOther.token, "other member")
        await assertSessionValid(accounts, "alpha", p.alphaMember.token, "the member itself")
    }

    func testAnAdminCannotRevokeAnOwnersSessions() async throws {
        let p = try await makePair()
        let accounts = p.accounts
        let admin = try await p.env.actor(p.alpha, token: p.alphaAdminToken)
        await assertSessionValid(accounts, "alpha", p.alphaOwnerToken, "owner")
        let before = try await p.env.world.snapshot()
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await accounts.sessions.revokeAllSessions(
                tenant: p.alpha, actor: admin, userID: p.alphaOwner.id.rawValue, client: Fixture.client)
        }
        try await assertUnchanged(p.env.world, since: before)
        assertSessionCached(accounts, "alpha", p.alphaOwnerToken, "owner")
        await assertSessionValid(p.env.freshService(), "alpha", p.alphaOwnerToken, "owner (store)")

        // An admin may sign a member out; an owner and the administrator
        // may sign out an admin or an owner.
        await assertSessionValid(accounts, "alpha", p.alphaMember.token, "member")
        let count = try await accounts.sessions.revokeAllSessions(
            tenant: p.alpha, actor: admin, userID: p.alphaMember.user.id.rawValue, client: Fixture.client)
        XCTAssertEqual(count, 1)
        await assertSessionRejected(accounts, "alpha", p.alphaMember.token, "member signed out by an admin")
        let owner = try await p.env.actor(p.alpha, token: p.alphaOwnerToken)
        _ = try await accounts.sessions.revokeAllSessions(
            tenant: p.alpha, actor: owner, userID: p.alphaAdmin.id.rawValue, client: Fixture.client)
        await assertSessionRejected(accounts, "alpha", p.alphaAdminToken, "admin signed out by the owner")
        _ = try await accounts.sessions.revokeAllSessions(
            tenant: p.alpha, actor: .administrator, userID: p.alphaOwner.id.rawValue, client: Fixture.client)
        await assertSessionRejected(accounts, "alpha", p.alphaOwnerToken, "owner signed out by the administrator")
    }

    func testRevokeAllSessionsDoesNotReachIntoAnotherTenant() async throws {
        let p = try await makePair()
        let accounts = p.accounts
        let betaOwner = try await p.env.actor(p.beta, token: p.betaOwner.token)
        await assertSessionValid(accounts, "alpha", p.alphaMember.token)
        for actor in [betaOwner, Principal.administrator] {
            await assertDomainError(.notFound, "USER_NOT_FOUND") {
                try await accounts.sessions.revokeAllSessions(
                    tenant: p.beta, actor: actor, userID: p.alphaMember.user.id.rawValue, client: Fixture.client)
            }
        }
        assertSessionCached(accounts, "alpha", p.alphaMember.token, "alpha member")
        await assertSessionValid(accounts, "alpha", p.alphaMember.token, session: p.alphaMember.session.id)
    }
}
