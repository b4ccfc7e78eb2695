import XCTest

@testable import MoatCore

/// ChangePassword: session and current password, new-password rules,
/// optional revocation of the other sessions, password.changed in the same
/// transaction.
final class PasswordChangeTests: XCTestCase {
    struct Signed {
        var world: World
        var tenant: Tenant
        var owner: User
        var current: SignInResult
        var others: [SignInResult]
    }

    func signedInThrice() async throws -> Signed {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        var results: [SignInResult] = []
        for _ in 0..<3 {
            results.append(try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword))
            world.clock.advance(seconds: 1)
        }
        return Signed(world: world, tenant: tenant, owner: owner, current: results[0], others: Array(results.dropFirst()))
    }

    func change(
        _ s: Signed, token: String? = nil, current: String = Fixture.ownerPassword, new: String = Fixture.newPassword,
        revokeOthers: Bool, client: ClientDetails = Fixture.otherClient
    ) async throws -> Int {
        try await s.world.accounts.passwords.changePassword(
            tenant: s.tenant, token: token ?? s.current.token, currentPassword: current, newPassword: new,
            revokeOtherSessions: revokeOthers, client: client)
    }

    func testChangeKeepsOtherSessionsByDefault() async throws {
        let s = try await signedInThrice()
        let world = s.world
        let sequence = world.lastSequence
        let now = world.clock.now()
        let revoked = try await change(s, revokeOthers: false)
        XCTAssertEqual(revoked, 0)

        for result in [s.current] + s.others {
            _ = try await world.accounts.authenticate(tenant: s.tenant.id, token: result.token)
        }
        let stored = try await world.storedUser(s.tenant, s.owner.id)
        XCTAssertEqual(stored?.passwordChangedAt, now)
        XCTAssertNotEqual(stored?.passwordHash, s.owner.passwordHash)

        let events = try world.events(after: sequence)
        XCTAssertEqual(
            events.map(\.event),
            [
                .passwordChanged(
                    userID: s.owner.id, email: Fixture.ownerEmail, ip: Fixture.otherClient.ip,
                    userAgent: Fixture.otherClient.userAgent, revokedSessions: 0)
            ])
        XCTAssertEqual(events.first?.record.createdAt, now)
        XCTAssertEqual(events.first?.record.tenantID, s.tenant.id)
        let log = try await world.securityLog(s.tenant, s.owner.id)
        XCTAssertEqual(log.last?.kind, .passwordChanged)
        XCTAssertEqual(log.last?.ip, Fixture.otherClient.ip)
        XCTAssertEqual(log.last?.userAgent, Fixture.otherClient.userAgent)

        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(s.tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        _ = try await world.signIn(s.tenant, Fixture.ownerEmail, Fixture.newPassword)
    }

    func testChangeCanRevokeTheOtherSessions() async throws {
        let s = try await signedInThrice()
        let world = s.world
        let sequence = world.lastSequence
        let revoked = try await change(s, revokeOthers: true)
        XCTAssertEqual(revoked, 2)

        _ = try await world.accounts.authenticate(tenant: s.tenant.id, token: s.current.token)
        for other in s.others {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.authenticate(tenant: s.tenant.id, token: other.token)
            }
        }
        let live = try await world.liveSessions(s.tenant, s.owner.id)
        XCTAssertEqual(live.map(\.id), [s.current.session.id])

        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["session.revoked", "session.revoked", "password.changed"])
        let revokedIDs = events.compactMap { item -> SessionID? in
            guard case .sessionRevoked(let id, let user, let reason) = item.event, user == s.owner.id,
                reason == "password_changed"
            else { return nil }
            return id
        }
        XCTAssertEqual(Set(revokedIDs), Set(s.others.map(\.session.id)))
        guard case .passwordChanged(_, _, _, _, let count)? = events.last?.event else {
            return XCTFail("no password.changed event")
        }
        XCTAssertEqual(count, 2)
        let log = try await world.securityLog(s.tenant, s.owner.id)
        XCTAssertEqual(log.last?.detail, "2 other sessions signed out")
    }

    func testWrongCurrentPasswordChangesNothingButCountsTowardLockout() async throws {
        let s = try await signedInThrice()
        let world = s.world
        let before = try await world.snapshot()
        for wrong in ["not-the-password", "", Fixture.ownerPassword + " ", String(repeating: "w", count: 5000)] {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await change(s, current: wrong, revokeOthers: true)
            }
        }
        let after = try await world.snapshot()
        XCTAssertEqual(after.users.map(\.passwordHash), before.users.map(\.passwordHash), "password hash unchanged")
        XCTAssertEqual(
            after.users.map(\.failedSignIns), before.users.map { $0.failedSignIns + 4 },
            "a stolen session is no unlimited password oracle: each wrong guess counts toward lockout")
        XCTAssertEqual(after.sessions, before.sessions, "no session revoked")
        XCTAssertEqual(after.events, before.events, "no event")
        // Each failure is in the user's security log, nothing else.
        XCTAssertEqual(after.securityLog.count, before.securityLog.count + 4)
        XCTAssertTrue(after.securityLog.dropFirst(before.securityLog.count).allSatisfy { $0.kind == .signInFailed })
        _ = try await world.signIn(s.tenant, Fixture.ownerEmail, Fixture.ownerPassword)
    }

    func testNewPasswordRulesApply() async throws {
        let s = try await signedInThrice()
        let world = s.world
        let before = try await world.snapshot()
        for (new, reason) in [
            (makePassword(length: 7), "PASSWORD_TOO_SHORT"), (makePassword(length: 1025), "PASSWORD_TOO_LONG"),
            ("Password1234", "PASSWORD_TOO_COMMON"), ("OWNER@acme.test", "PASSWORD_IS_EMAIL"),
        ] {
            await assertDomainError(.invalidArgument, reason) {
                try await change(s, new: new, revokeOthers: true)
            }
        }
        try await assertUnchanged(world, since: before)

        // The tenant's minimum counts too.
        let tenant = try await world.setPolicy(s.tenant) { $0.minPasswordLength = 20 }
        let beforeMinimum = try await world.snapshot()
        let error = await assertDomainError(.invalidArgument, "PASSWORD_TOO_SHORT") {
            try await world.accounts.passwords.changePassword(
                tenant: tenant, token: s.current.token, currentPassword: Fixture.ownerPassword,
                newPassword: makePassword(length: 19), revokeOtherSessions: false, client: Fixture.client)
        }
        XCTAssertEqual(error?.details["min_length"], "20")
        try await assertUnchanged(world, since: beforeMinimum)
    }

    func testChangeNeedsALiveSession() async throws {
        let s = try await signedInThrice()
        let world = s.world
        try await world.accounts.signIn.signOut(tenant: s.tenant, token: s.others[0].token)
        let before = try await world.snapshot()
        for token in ["", "garbage", s.others[0].token] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await change(s, token: token, revokeOthers: true)
            }
        }
        try await assertUnchanged(world, since: before)
    }
}
