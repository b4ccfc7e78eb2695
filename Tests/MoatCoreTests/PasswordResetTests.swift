import XCTest

@testable import MoatCore

/// RequestPasswordReset and ResetPassword.
final class PasswordResetTests: XCTestCase {
    func request(_ world: World, _ tenant: Tenant, _ email: String) async throws {
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: email, client: Fixture.otherClient)
    }

    func reset(_ world: World, _ tenant: Tenant, _ token: String, _ password: String = Fixture.newPassword)
        async throws -> Int
    {
        try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: password)
    }

    func testRequestForAnAccountEmitsASingleUseTokenForOneHour() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let sequence = world.lastSequence
        let now = world.clock.now()
        try await request(world, tenant, "  OWNER@acme.TEST ")

        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["password_reset.requested"])
        XCTAssertEqual(events.first?.record.subject, owner.id.rawValue)
        XCTAssertEqual(events.first?.record.tenantID, tenant.id)
        guard case .passwordResetRequested(let userID, let email, let token, let expires, let ip, let agent, let restores)? =
            events.first?.event
        else { return XCTFail("no password_reset.requested event") }
        XCTAssertEqual(userID, owner.id)
        XCTAssertEqual(email, Fixture.ownerEmail)
        XCTAssertEqual(expires, now.adding(seconds: 3600))
        XCTAssertEqual(ip, Fixture.otherClient.ip)
        XCTAssertEqual(agent, Fixture.otherClient.userAgent)
        XCTAssertEqual(token.count, 43)
        XCTAssertFalse(restores)

        // Stored only as a hash, bound to tenant and user, unused.
        let record = try await world.resetRecord(tenant, token: token)
        XCTAssertEqual(
            record,
            PasswordResetToken(
                tokenHash: OpaqueToken.hash(token), tenantID: tenant.id, userID: owner.id, createdAt: now,
                expiresAt: now.adding(seconds: 3600)))
        let log = try await world.securityLog(tenant, owner.id)
        XCTAssertEqual(log.last?.kind, .passwordResetRequested)
        XCTAssertEqual(log.last?.ip, Fixture.otherClient.ip)
        XCTAssertEqual(log.last?.userAgent, Fixture.otherClient.userAgent)

        // Requesting twice makes two distinct tokens.
        try await request(world, tenant, Fixture.ownerEmail)
        let second = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        XCTAssertNotEqual(second, token)
    }

    func testRequestForUnknownEmailIsOKAndIssuesNoToken() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let before = try await world.snapshot()
        try await request(world, tenant, " Ghost@Acme.test ")
        let after = try await world.snapshot()
        let events = try world.events(after: before.events.last?.sequence ?? 0)
        XCTAssertEqual(events.map(\.event), [.passwordResetUnknownEmail(email: "ghost@acme.test", ip: Fixture.otherClient.ip)])
        XCTAssertEqual(events.first?.record.tenantID, tenant.id)
        XCTAssertEqual(after.users, before.users)
        XCTAssertEqual(after.sessions, before.sessions)
        XCTAssertEqual(after.securityLog, before.securityLog)
        XCTAssertFalse(try world.events().contains { $0.record.type == "password_reset.requested" })
    }

    func testResetSetsThePasswordRevokesEverySessionAndEmits() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let first = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let second = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        try await request(world, tenant, Fixture.ownerEmail)
        let token = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        world.clock.advance(seconds: 600)
        let sequence = world.lastSequence
        let now = world.clock.now()

        let revoked = try await reset(world, tenant, token)
        XCTAssertEqual(revoked, 2)
        for result in [first, second] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.authenticate(tenant: tenant.id, token: result.token)
            }
        }
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.passwordChangedAt, now)
        let record = try await world.resetRecord(tenant, token: token)
        XCTAssertEqual(record?.usedAt, now)

        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["session.revoked", "session.revoked", "password.reset"])
        XCTAssertEqual(events.last?.event, .passwordReset(userID: owner.id, email: Fixture.ownerEmail, revokedSessions: 2))
        XCTAssertTrue(
            events.dropLast().allSatisfy {
                if case .sessionRevoked(_, owner.id, "password_reset") = $0.event { return true }
                return false
            })
        let log = try await world.securityLog(tenant, owner.id)
        XCTAssertEqual(log.last?.kind, .passwordReset)

        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.newPassword)
    }

    func testTokenIsSingleUse() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        try await request(world, tenant, Fixture.ownerEmail)
        let token = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        _ = try await reset(world, tenant, token)
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.newPassword)
        let before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") {
            try await reset(world, tenant, token, "another-pass-8812")
        }
        try await assertUnchanged(world, since: before)
        _ = try await world.accounts.authenticate(tenant: tenant.id, token: session.token)
    }

    func testTokenExpiresAfterOneHour() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        try await request(world, tenant, Fixture.ownerEmail)
        let expiring = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        world.clock.advance(seconds: 3600)
        let before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") { try await reset(world, tenant, expiring) }
        try await assertUnchanged(world, since: before)

        try await request(world, tenant, Fixture.ownerEmail)
        let fresh = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        world.clock.advance(milliseconds: 3_599_999)
        _ = try await reset(world, tenant, fresh)
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.newPassword)
    }

    func testTokenFailingThePasswordRulesIsNotSpent() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        try await request(world, tenant, Fixture.ownerEmail)
        let token = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        let before = try await world.snapshot()
        for (password, reason) in [
            ("short", "PASSWORD_TOO_SHORT"), (makePassword(length: 1025), "PASSWORD_TOO_LONG"),
            ("PASSWORD", "PASSWORD_TOO_COMMON"), (Fixture.ownerEmail, "PASSWORD_IS_EMAIL"),
        ] {
            await assertDomainError(.invalidArgument, reason) { try await reset(world, tenant, token, password) }
        }
        try await assertUnchanged(world, since: before)
        let record = try await world.resetRecord(tenant, token: token)
        XCTAssertNil(record?.usedAt)
        _ = try await world.accounts.authenticate(tenant: tenant.id, token: session.token)

        let revoked = try await reset(world, tenant, token)
        XCTAssertEqual(revoked, 1)
    }

    func testTokenOfAnotherTenantIsInvalid() async throws {
        let world = try World()
        let (acme, _) = try await world.makeTenant(slug: "acme")
        let (globex, _) = try await world.makeTenant(slug: "globex", ownerEmail: Fixture.ownerEmail)
        try await request(world, acme, Fixture.ownerEmail)
        let token = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        let before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") { try await reset(world, globex, token) }
        try await assertUnchanged(world, since: before)
        _ = try await world.signIn(globex, Fixture.ownerEmail, Fixture.ownerPassword)
        // Still good where it belongs.
        _ = try await reset(world, acme, token)
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.newPassword)
        _ = try await world.signIn(globex, Fixture.ownerEmail, Fixture.ownerPassword)
    }

    func testGarbageTokensAreInvalid() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let before = try await world.snapshot()
        for token in ["", "x", OpaqueToken.make(), String(repeating: "t", count: 10_000)] {
            await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") { try await reset(world, tenant, token) }
        }
        try await assertUnchanged(world, since: before)
    }

    func testResetEndsALockout() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        for _ in 0..<5 { _ = try? await world.signIn(tenant, Fixture.ownerEmail, "wrong-password-123") }
        await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        try await request(world, tenant, Fixture.ownerEmail)
        let token = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        _ = try await reset(world, tenant, token)
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 0)
        XCTAssertNil(stored?.lockedUntil)
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.newPassword)
    }

    func testTokenOfADisabledAccountIsInvalid() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: "member@acme.test")
        try await request(world, tenant, "member@acme.test")
        let token = try XCTUnwrap(try world.lastResetToken(email: "member@acme.test"))
        _ = try await world.accounts.users.setUserEnabled(
            tenant: tenant, actor: .administrator, id: member.id.rawValue, enabled: false)
        let before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") { try await reset(world, tenant, token) }
        try await assertUnchanged(world, since: before)
    }

    func testSecurityLogRecordsRequestAndUse() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        try await request(world, tenant, Fixture.ownerEmail)
        let token = try XCTUnwrap(try world.lastResetToken(email: Fixture.ownerEmail))
        _ = try await reset(world, tenant, token)
        let log = try await world.securityLog(tenant, owner.id)
        XCTAssertEqual(log.map(\.kind), [.passwordResetRequested, .passwordReset])
        for entry in log { XCTAssertFalse(entry.detail.contains(token)) }
    }
}
