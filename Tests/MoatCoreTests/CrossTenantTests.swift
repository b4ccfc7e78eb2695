import XCTest

@testable import MoatCore

/// Ids, emails and tokens of tenant A used in tenant B: NOT_FOUND or
/// UNAUTHENTICATED, never data, and nothing changes.
final class CrossTenantTests: XCTestCase {
    struct Pair {
        var world: World
        var alpha: Tenant
        var beta: Tenant
        var alphaOwner: User
        var alphaMember: User
        var alphaOwnerToken: String
        var alphaMemberToken: String
        var betaOwnerToken: String
    }

    func makePair() async throws -> Pair {
        let world = try World()
        let (alpha, alphaOwner) = try await world.makeTenant(slug: "alpha", ownerEmail: "owner@alpha.test")
        let (beta, _) = try await world.makeTenant(slug: "beta", ownerEmail: "owner@beta.test")
        let alphaMember = try await world.makeUser(alpha, email: "member@alpha.test")
        let alphaOwnerToken = try await world.signIn(alpha, "owner@alpha.test", Fixture.ownerPassword).token
        let alphaMemberToken = try await world.signIn(alpha, "member@alpha.test", Fixture.memberPassword).token
        let betaOwnerToken = try await world.signIn(beta, "owner@beta.test", Fixture.ownerPassword).token
        return Pair(
            world: world, alpha: alpha, beta: beta, alphaOwner: alphaOwner, alphaMember: alphaMember,
            alphaOwnerToken: alphaOwnerToken, alphaMemberToken: alphaMemberToken, betaOwnerToken: betaOwnerToken)
    }

    func testSessionTokensDoNotCrossTenants() async throws {
        let p = try await makePair()
        let world = p.world
        let before = try await world.snapshot()
        for token in [p.alphaOwnerToken, p.alphaMemberToken] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.authenticate(tenant: p.beta.id, token: token)
            }
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.actor(tenant: p.beta.id, token: token, callerIsAdministrator: true)
            }
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.signIn.signOut(tenant: p.beta, token: token)
            }
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.passwords.changePassword(
                    tenant: p.beta, token: token, currentPassword: Fixture.ownerPassword,
                    newPassword: Fixture.newPassword, revokeOtherSessions: true, client: Fixture.client)
            }
        }
        try await assertUnchanged(world, since: before)
        // Still valid at home.
        _ = try await world.accounts.authenticate(tenant: p.alpha.id, token: p.alphaOwnerToken)
        _ = try await world.accounts.authenticate(tenant: p.alpha.id, token: p.alphaMemberToken)
    }

    func testUserIdsDoNotCrossTenants() async throws {
        let p = try await makePair()
        let world = p.world
        let betaOwner = try await world.actor(p.beta, token: p.betaOwnerToken)
        let before = try await world.snapshot()
        for actor in [Principal.administrator, betaOwner] {
            for id in [p.alphaOwner.id, p.alphaMember.id] {
                await assertDomainError(.notFound, "USER_NOT_FOUND") {
                    try await world.accounts.users.user(tenant: p.beta, actor: actor, id: id.rawValue)
                }
                for enabled in [false, true] {
                    await assertDomainError(.notFound, "USER_NOT_FOUND") {
                        try await world.accounts.users.setUserEnabled(
                            tenant: p.beta, actor: actor, id: id.rawValue, enabled: enabled)
                    }
                }
            }
            let listed = try await world.accounts.users.listUsers(tenant: p.beta, actor: actor, pageSize: 0, pageToken: "")
            XCTAssertEqual(listed.users.map(\.email), ["owner@beta.test"])
            // A page token naming an alpha email reveals nothing either.
            let after = try await world.accounts.users.listUsers(
                tenant: p.beta, actor: actor, pageSize: 0,
                pageToken: AccountService.encodePageToken("member@alpha.test"))
            XCTAssertEqual(after.users.map(\.email), ["owner@beta.test"])
        }
        try await assertUnchanged(world, since: before)
        let member = try await world.storedUser(p.alpha, p.alphaMember.id)
        XCTAssertEqual(member?.status, .active)
    }

    func testEmailsDoNotCrossTenants() async throws {
        let p = try await makePair()
        let world = p.world
        let before = try await world.snapshot()
        let wrongTenant = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(p.beta, "member@alpha.test", Fixture.memberPassword)
        }
        let nobody = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(p.beta, "nobody@beta.test", Fixture.memberPassword)
        }
        XCTAssertEqual(wrongTenant, nobody)
        try await assertUnchanged(world, since: before)

        // Failures in beta do not lock the alpha account.
        for _ in 0..<6 { _ = try? await world.signIn(p.beta, "member@alpha.test", Fixture.memberPassword) }
        let stored = try await world.storedUser(p.alpha, p.alphaMember.id)
        XCTAssertEqual(stored?.failedSignIns, 0)
        _ = try await world.signIn(p.alpha, "member@alpha.test", Fixture.memberPassword)

        // A reset asked in beta for an alpha address issues no token; it is
        // an unknown address there.
        let sequence = world.lastSequence
        try await world.accounts.passwords.requestPasswordReset(tenant: p.beta, email: "member@alpha.test", client: Fixture.client)
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.event), [.passwordResetUnknownEmail(email: "member@alpha.test", ip: Fixture.client.ip)])
        XCTAssertEqual(events.map(\.record.tenantID), [p.beta.id])
        XCTAssertNil(try world.lastResetToken(email: "member@alpha.test"))
    }

    func testResetTokensDoNotCrossTenants() async throws {
        let p = try await makePair()
        let world = p.world
        try await world.accounts.passwords.requestPasswordReset(tenant: p.alpha, email: "member@alpha.test", client: Fixture.client)
        let token = try XCTUnwrap(try world.lastResetToken(email: "member@alpha.test"))
        let before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") {
            try await world.accounts.passwords.resetPassword(tenant: p.beta, token: token, newPassword: Fixture.newPassword)
        }
        try await assertUnchanged(world, since: before)
        let record = try await world.resetRecord(p.alpha, token: token)
        XCTAssertNil(record?.usedAt)
        let inBeta = try await world.resetRecord(p.beta, token: token)
        XCTAssertNil(inBeta)
    }

    func testAlphaActorCannotActInBetaThroughItsToken() async throws {
        let p = try await makePair()
        let world = p.world
        let before = try await world.snapshot()
        // The handler derives the actor from the request's tenant: an alpha
        // owner's token never becomes an actor in beta.
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            let actor = try await world.accounts.actor(
                tenant: p.beta.id, token: p.alphaOwnerToken, callerIsAdministrator: false)
            return try await world.accounts.users.createUser(
                tenant: p.beta, actor: actor, email: "intruder@beta.test", password: Fixture.memberPassword,
                role: .owner)
        }
        try await assertUnchanged(world, since: before)
    }
}
