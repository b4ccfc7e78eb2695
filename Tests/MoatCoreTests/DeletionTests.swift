import Foundation
import MoatCrypto
import XCTest

@testable import MoatCore

// MARK: Helpers (file-private: other test files may define similar ones)

private let thirtyDays: Int64 = 30 * 86_400

/// Turns 2FA on for the session's user; returns the TOTP secret. The
/// clock moves a step first so the enrolment code is a fresh one.
private func enableTwoFactorForDeletion(_ world: World, _ tenant: Tenant, token: String, password: String)
    async throws -> [UInt8]
{
    let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
        tenant: tenant, token: token, password: password, client: Fixture.client)
    let secret = try XCTUnwrap(Base32.decode(enrollment.secretBase32.replacingOccurrences(of: " ", with: "")))
    let code = try TOTP(secret: secret).code(at: world.clock.now().seconds)
    _ = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(tenant: tenant, token: token, code: code, client: Fixture.client)
    return secret
}

/// A code of the next time step (moves the clock 30 s, so a code is never
/// one already spent).
private func freshCode(_ world: World, _ secret: [UInt8]) throws -> String {
    world.clock.advance(seconds: 30)
    return try TOTP(secret: secret).code(at: world.clock.now().seconds)
}

/// A well-formed code that is not the current one (nor a neighbour's).
private func wrongCode(_ world: World, _ secret: [UInt8]) throws -> String {
    let now = world.clock.now().seconds
    let valid = Set(try [-30, 0, 30].map { try TOTP(secret: secret).code(at: now + Int64($0)) })
    return ["000000", "111111", "222222", "333333"].first { !valid.contains($0) }!
}

/// Signs in a 2FA user through the challenge with a fresh code.
private func signInWithCode(_ world: World, _ tenant: Tenant, _ email: String, _ password: String, _ secret: [UInt8])
    async throws -> SignInResult
{
    guard case .secondFactorRequired(let challenge) = try await world.accounts.signIn.beginSignIn(
        tenant: tenant, email: email, password: password, client: Fixture.client)
    else {
        XCTFail("expected a second-factor challenge")
        throw DomainError.invalidCredentials
    }
    return try await world.accounts.signIn.completeSignIn(
        tenant: tenant, challenge: challenge.token, code: try freshCode(world, secret), recoveryCode: "",
        client: Fixture.client)
}

/// The whole memory state, for row-level checks after a purge.
private func memoryState(_ world: World) async throws -> MemoryAccountStore.State {
    try await world.store.read { ($0 as! MemoryTransaction).state }
}

private extension World {
    /// The tenant as the service resolves it now (handlers do the same).
    func current(_ tenant: Tenant) async throws -> Tenant {
        try await accounts.tenant(reference: tenant.id.rawValue)
    }

    func requestDeletion(
        _ tenant: Tenant, token: String, confirmation: String = "DELETE", password: String, code: String = ""
    ) async throws -> User {
        try await accounts.deletion.requestAccountDeletion(
            tenant: tenant, token: token, confirmation: confirmation, password: password, code: code,
            client: Fixture.client)
    }

    func restore(_ tenant: Tenant, _ email: String, _ password: String, code: String = "") async throws -> User {
        try await accounts.deletion.restoreAccount(tenant: tenant, email: email, password: password, code: code, client: Fixture.client)
    }

    func eventTypes(after sequence: Int64) throws -> [String] {
        try events(after: sequence).map(\.record.type)
    }
}

// MARK: - Account deletion

final class AccountDeletionRequestTests: XCTestCase {
    private let memberEmail = "member@acme.test"

    func testConfirmationMustBeExactlyDELETEAndNothingChanges() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        for confirmation in ["delete", "DELETE ", "", " DELETE", "Delete", "DELETE\n", "ＤＥＬＥＴＥ"] {
            let before = try await world.snapshot()
            await assertDomainError(.invalidArgument, "CONFIRMATION_REQUIRED") {
                try await world.requestDeletion(
                    tenant, token: session.token, confirmation: confirmation, password: Fixture.memberPassword)
            }
            try await assertUnchanged(world, since: before, "confirmation \(confirmation.debugDescription)")
        }
        // The session still works: nothing was revoked.
        _ = try await world.accounts.validate(tenantReference: tenant.id.rawValue, token: session.token)
    }

    func testWrongPasswordIsInvalidCredentialsAndCountsTowardTheLockout() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let sequence = world.lastSequence
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.requestDeletion(tenant, token: session.token, password: "not-the-password-123")
        }
        let stored = try await world.storedUser(tenant, member.id)
        XCTAssertEqual(stored?.status, .active)
        XCTAssertNil(stored?.purgeAfter)
        XCTAssertEqual(stored?.failedSignIns, 1)
        let value1 = try await world.securityLog(tenant, member.id).last?.kind
        XCTAssertEqual(value1, .signInFailed)
        XCTAssertEqual(try world.eventTypes(after: sequence), [], "no deletion event for a refused request")
        let value2 = try await world.liveSessions(tenant, member.id).count
        XCTAssertEqual(value2, 1)

        // Up to the threshold (5): then sign-in itself is locked, and so is
        // deletion with the right password.
        for _ in 1..<tenant.policy.lockoutThreshold {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.requestDeletion(tenant, token: session.token, password: "not-the-password-123")
            }
        }
        await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        }
        await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.requestDeletion(tenant, token: session.token, password: Fixture.memberPassword)
        }
        let after = try await world.storedUser(tenant, member.id)
        XCTAssertEqual(after?.status, .active)
    }

    func testTwoFactorNeedsARightCode() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let secret = try await enableTwoFactorForDeletion(world, tenant, token: session.token, password: Fixture.memberPassword)

        var before = try await world.snapshot()
        await assertDomainError(.invalidArgument, "CODE_REQUIRED") {
            try await world.requestDeletion(tenant, token: session.token, password: Fixture.memberPassword)
        }
        try await assertUnchanged(world, since: before, "no code")

        world.clock.advance(seconds: 30)
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.requestDeletion(
                tenant, token: session.token, password: Fixture.memberPassword, code: try wrongCode(world, secret))
        }
        let value3 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value3, .active)
        let value4 = try await world.liveSessions(tenant, member.id).count
        XCTAssertEqual(value4, 1)

        // A right code but a wrong password: the password is checked first.
        before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.requestDeletion(
                tenant, token: session.token, password: "not-the-password-123", code: try freshCode(world, secret))
        }
        let value5 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value5, .active)

        let code = try freshCode(world, secret)
        let deleted = try await world.requestDeletion(
            tenant, token: session.token, password: Fixture.memberPassword, code: code)
        XCTAssertEqual(deleted.status, .pendingDeletion)
        let value6 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value6, .pendingDeletion)
        _ = before
    }

    func testSuccessSchedulesThePurgeRevokesEverySessionAndAnnouncesIt() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let first = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let second = try await world.signIn(tenant, memberEmail, Fixture.memberPassword, client: Fixture.otherClient)
        let ownerSession = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        // Warm the validation cache: a revoked session must not stay valid from it.
        for token in [first.token, second.token] {
            _ = try await world.accounts.validate(tenantReference: tenant.id.rawValue, token: token)
        }
        // An outstanding reset link must die with the request.
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: memberEmail, client: Fixture.client)
        let resetToken = try XCTUnwrap(try world.lastResetToken(email: memberEmail))

        world.clock.advance(seconds: 5)
        let now = world.clock.now()
        let sequence = world.lastSequence
        let deleted = try await world.requestDeletion(tenant, token: first.token, password: Fixture.memberPassword)

        XCTAssertEqual(deleted.status, .pendingDeletion)
        XCTAssertEqual(deleted.purgeAfter, now.adding(seconds: thirtyDays))
        let stored = try await world.storedUser(tenant, member.id)
        XCTAssertEqual(stored?.status, .pendingDeletion)
        XCTAssertEqual(stored?.purgeAfter, now.adding(seconds: thirtyDays))
        let value7 = try await world.liveSessions(tenant, member.id)
        XCTAssertEqual(value7, [])
        for token in [first.token, second.token] {
            if case .success? = world.accounts.validateCached(tenantReference: tenant.id.rawValue, token: token) {
                XCTFail("a revoked session is still valid from the cache")
            }
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.validate(tenantReference: tenant.id.rawValue, token: token)
            }
        }
        // Other users keep their sessions.
        _ = try await world.accounts.validate(tenantReference: tenant.id.rawValue, token: ownerSession.token)
        let value8 = try await world.liveSessions(tenant, owner.id).count
        XCTAssertEqual(value8, 1)

        let events = try world.events(after: sequence)
        var revoked: Set<SessionID> = []
        var scheduled = 0
        for item in events {
            switch item.event {
            case .sessionRevoked(let session, let user, let reason):
                XCTAssertEqual(user, member.id)
                XCTAssertEqual(reason, "account_deletion")
                revoked.insert(session)
            case .accountDeletionScheduled(let user, let email, let purgeAfter):
                XCTAssertEqual(user, member.id)
                XCTAssertEqual(email, memberEmail)
                XCTAssertEqual(purgeAfter, now.adding(seconds: thirtyDays))
                XCTAssertEqual(item.record.tenantID, tenant.id)
                scheduled += 1
            default:
                XCTFail("unexpected event \(item.record.type)")
            }
        }
        XCTAssertEqual(revoked, [first.session.id, second.session.id])
        XCTAssertEqual(scheduled, 1)
        let value9 = try await world.securityLog(tenant, member.id).last?.kind
        XCTAssertEqual(value9, .accountDeletionRequested)

        // The reset link is dead.
        await assertDomainError(.unauthenticated, "RESET_TOKEN_INVALID") {
            try await world.accounts.passwords.resetPassword(tenant: tenant, token: resetToken, newPassword: Fixture.newPassword)
        }
        // A second request with a dead session changes nothing.
        let before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.requestDeletion(tenant, token: second.token, password: Fixture.memberPassword)
        }
        try await assertUnchanged(world, since: before)
    }

    func testAGraceSettingOtherThanTheDefaultIsUsed() async throws {
        var configuration = AccountConfiguration()
        configuration.deletionGraceSeconds = 3_600
        let world = try World(configuration: configuration)
        let (tenant, _) = try await world.makeTenant()
        try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let now = world.clock.now()
        let deleted = try await world.requestDeletion(tenant, token: session.token, password: Fixture.memberPassword)
        XCTAssertEqual(deleted.purgeAfter, now.adding(seconds: 3_600))
    }
}

// MARK: - Sign-in and restore during the grace period

final class AccountDeletionGraceTests: XCTestCase {
    private let memberEmail = "member@acme.test"

    private func pendingMember(_ world: World) async throws -> (Tenant, User, Timestamp) {
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let deleted = try await world.requestDeletion(tenant, token: session.token, password: Fixture.memberPassword)
        return (tenant, member, try XCTUnwrap(deleted.purgeAfter))
    }

    func testSignInIsRefusedWithThePurgeDateOnlyAfterTheRightPassword() async throws {
        let world = try World()
        let (tenant, member, purgeAfter) = try await pendingMember(world)
        world.clock.advance(seconds: 86_400)

        // No enumeration: a wrong password and an unknown email are the
        // same INVALID_CREDENTIALS as for any account.
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, memberEmail, "not-the-password-123")
        }
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, "nobody@acme.test", "not-the-password-123")
        }
        let error = await assertDomainError(.failedPrecondition, "ACCOUNT_PENDING_DELETION") {
            try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        }
        XCTAssertEqual(error?.details["purge_after_unix"], "\(purgeAfter.seconds)")
        XCTAssertEqual(purgeAfter.seconds, 1_750_000_000 + thirtyDays)
        await assertDomainError(.failedPrecondition, "ACCOUNT_PENDING_DELETION") {
            try await world.accounts.signIn.beginSignIn(
                tenant: tenant, email: memberEmail, password: Fixture.memberPassword, client: Fixture.client)
        }
        let value10 = try await world.liveSessions(tenant, member.id)
        XCTAssertEqual(value10, [], "no session was created")
    }

    func testRestoreRefusesWrongPasswordUnknownEmailAndActiveAccounts() async throws {
        let world = try World()
        let (tenant, member, _) = try await pendingMember(world)
        world.clock.advance(seconds: 3_600)

        var before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.restore(tenant, memberEmail, "not-the-password-123")
        }
        let value11 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value11, .pendingDeletion)
        let value12 = try await world.storedUser(tenant, member.id)?.failedSignIns
        XCTAssertEqual(value12, 1, "counted toward the lockout")

        before = try await world.snapshot()
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.restore(tenant, "nobody@acme.test", Fixture.memberPassword)
        }
        try await assertUnchanged(world, since: before, "unknown email")

        // The owner's account is active: nothing to restore.
        before = try await world.snapshot()
        await assertDomainError(.failedPrecondition, "NOT_PENDING_DELETION") {
            try await world.restore(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        try await assertUnchanged(world, since: before, "active account")
    }

    func testRestoreMakesTheAccountActiveAndSignInWorksAgain() async throws {
        let world = try World()
        let (tenant, member, _) = try await pendingMember(world)
        world.clock.advance(seconds: thirtyDays - 1)
        let sequence = world.lastSequence

        let restored = try await world.restore(tenant, " Member@ACME.test ", Fixture.memberPassword)
        XCTAssertEqual(restored.status, .active)
        XCTAssertNil(restored.purgeAfter)
        let stored = try await world.storedUser(tenant, member.id)
        XCTAssertEqual(stored?.status, .active)
        XCTAssertNil(stored?.purgeAfter)
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["account.restored"])
        if case .accountRestored(let user, let email) = events.first?.event {
            XCTAssertEqual(user, member.id)
            XCTAssertEqual(email, memberEmail)
        }
        let value13 = try await world.securityLog(tenant, member.id).last?.kind
        XCTAssertEqual(value13, .accountRestored)

        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        _ = try await world.accounts.validate(tenantReference: tenant.id.rawValue, token: session.token)

        // Nothing left for the purge job, even long after.
        world.clock.advance(seconds: 2 * thirtyDays)
        let report = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(report, PurgeReport())
        let value14 = try await world.storedUser(tenant, member.id)
        XCTAssertNotNil(value14)

        // Restoring twice: NOT_PENDING_DELETION.
        await assertDomainError(.failedPrecondition, "NOT_PENDING_DELETION") {
            try await world.restore(tenant, memberEmail, Fixture.memberPassword)
        }
    }

    func testRestoreAtTheEndOfTheGraceIsRefusedAndAfterThePurgeTheAccountIsUnknown() async throws {
        let world = try World()
        let (tenant, member, _) = try await pendingMember(world)
        world.clock.advance(seconds: thirtyDays)
        // Due but not purged yet: too late to restore.
        await assertDomainError(.failedPrecondition, "GRACE_PERIOD_OVER") {
            try await world.restore(tenant, memberEmail, Fixture.memberPassword)
        }
        let value15 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value15, .pendingDeletion)
        try await world.accounts.deletion.purgeDueDeletions()
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.restore(tenant, memberEmail, Fixture.memberPassword)
        }
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        }
    }

    func testRestoreWithTwoFactorNeedsACode() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let secret = try await enableTwoFactorForDeletion(world, tenant, token: session.token, password: Fixture.memberPassword)
        _ = try await world.requestDeletion(
            tenant, token: session.token, password: Fixture.memberPassword, code: try freshCode(world, secret))

        // Sign-in with the right password is refused the same way with 2FA on.
        await assertDomainError(.failedPrecondition, "ACCOUNT_PENDING_DELETION") {
            try await world.accounts.signIn.beginSignIn(
                tenant: tenant, email: memberEmail, password: Fixture.memberPassword, client: Fixture.client)
        }

        let before = try await world.snapshot()
        await assertDomainError(.invalidArgument, "CODE_REQUIRED") {
            try await world.restore(tenant, memberEmail, Fixture.memberPassword)
        }
        try await assertUnchanged(world, since: before, "no code")
        world.clock.advance(seconds: 30)
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.restore(tenant, memberEmail, Fixture.memberPassword, code: try wrongCode(world, secret))
        }
        let value16 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value16, .pendingDeletion)

        let restored = try await world.restore(tenant, memberEmail, Fixture.memberPassword, code: try freshCode(world, secret))
        XCTAssertEqual(restored.status, .active)
        XCTAssertTrue(restored.twoFactorEnabled, "2FA survives the round trip")
        // Signing in still asks for the second factor, and works with it.
        let signedIn = try await signInWithCode(world, tenant, memberEmail, Fixture.memberPassword, secret)
        XCTAssertTrue(signedIn.session.secondFactorSatisfied)
    }

    func testRestoreIsRefusedWhileTheTenantIsPendingDeletion() async throws {
        let world = try World()
        let (tenant, _, _) = try await pendingMember(world)
        _ = try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: "DELETE")
        let pending = try await world.current(tenant)
        await assertDomainError(.failedPrecondition, "TENANT_PENDING_DELETION") {
            try await world.restore(pending, memberEmail, Fixture.memberPassword)
        }
    }
}

// MARK: - Last owner

final class AccountDeletionLastOwnerTests: XCTestCase {
    func testTheLastOwnerCannotDeleteTheirAccount() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        try await world.makeUser(tenant, email: "admin@acme.test", password: Fixture.adminPassword, role: .admin)
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let before = try await world.snapshot()
        await assertDomainError(.failedPrecondition, "LAST_OWNER") {
            try await world.requestDeletion(tenant, token: session.token, password: Fixture.ownerPassword)
        }
        try await assertUnchanged(world, since: before)
        let value17 = try await world.storedUser(tenant, owner.id)?.status
        XCTAssertEqual(value17, .active)
        _ = try await world.accounts.validate(tenantReference: tenant.id.rawValue, token: session.token)
    }

    func testWithASecondActiveOwnerTheFirstMayGoButThenTheSecondIsTheLast() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let second = try await world.makeUser(tenant, email: "second@acme.test", password: Fixture.adminPassword, role: .owner)
        let ownerSession = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let secondSession = try await world.signIn(tenant, "second@acme.test", Fixture.adminPassword)

        let deleted = try await world.requestDeletion(tenant, token: ownerSession.token, password: Fixture.ownerPassword)
        XCTAssertEqual(deleted.status, .pendingDeletion)
        // The first owner is pending deletion: they do not count as an owner.
        await assertDomainError(.failedPrecondition, "LAST_OWNER") {
            try await world.requestDeletion(tenant, token: secondSession.token, password: Fixture.adminPassword)
        }
        let value18 = try await world.storedUser(tenant, second.id)?.status
        XCTAssertEqual(value18, .active)
        let count = try await world.store.read { try $0.activeOwnerCount(tenant: tenant.id, except: nil) }
        XCTAssertEqual(count, 1)
        _ = owner
    }

    func testADisabledOwnerDoesNotCount() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let second = try await world.makeUser(tenant, email: "second@acme.test", password: Fixture.adminPassword, role: .owner)
        _ = try await world.accounts.users.setUserEnabled(
            tenant: tenant, actor: .administrator, id: second.id.rawValue, enabled: false)
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        await assertDomainError(.failedPrecondition, "LAST_OWNER") {
            try await world.requestDeletion(tenant, token: session.token, password: Fixture.ownerPassword)
        }
    }
}

// MARK: - Purge

final class AccountDeletionPurgeTests: XCTestCase {
    private let memberEmail = "member@acme.test"

    func testThePurgeDeletesEveryRowOfTheAccountAtTheEndOfTheGraceAndNotBefore() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let bystander = try await world.makeUser(tenant, email: "bystander@acme.test")
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let secret = try await enableTwoFactorForDeletion(world, tenant, token: session.token, password: Fixture.memberPassword)
        // Every kind of row the member can have: sessions (one revoked),
        // a reset token, a 2FA credential, recovery codes, a pending
        // enrolment, an open sign-in challenge, security-log entries.
        _ = try await signInWithCode(world, tenant, memberEmail, Fixture.memberPassword, secret)
        _ = try await world.accounts.signIn.beginSignIn(
            tenant: tenant, email: memberEmail, password: Fixture.memberPassword, client: Fixture.client)
        _ = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.memberPassword, client: Fixture.client)
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: memberEmail, client: Fixture.client)
        // Team rows: the member owns a team, belongs to another, and sent
        // an invitation.
        let memberActor = try await world.actor(tenant, token: session.token)
        let ownTeam = try await world.accounts.teams.createTeam(tenant: tenant, actor: memberActor, name: "Member's team")
        let otherTeam = try await world.accounts.teams.createTeam(
            tenant: tenant, actor: .administrator, name: "Owner's team", ownerUserID: owner.id.rawValue)
        _ = try await world.accounts.teams.invite(
            tenant: tenant, actor: memberActor, teamID: ownTeam.team.id.rawValue, email: "friend@acme.test", role: .member)
        try await world.store.write { writer in
            try writer.insert(
                TeamMember(
                    tenantID: tenant.id, teamID: otherTeam.team.id, userID: member.id, role: .member,
                    joinedAt: world.clock.now()))
        }
        // The bystander has rows too; they must all stay.
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: "bystander@acme.test", client: Fixture.client)
        _ = try await world.signIn(tenant, "bystander@acme.test", Fixture.memberPassword)

        var state = try await memoryState(world)
        XCTAssertNotNil(state.twoFactor[member.id])
        XCTAssertNotNil(state.pendingTwoFactor[member.id])
        XCTAssertEqual(state.teamMembers.keys.filter { $0.user == member.id }.count, 2)
        XCTAssertEqual(state.teamInvitations.values.filter { $0.invitedBy == member.id }.count, 1)
        XCTAssertEqual(state.recoveryCodes[member.id]?.count, 10)
        XCTAssertTrue(state.challenges.values.contains { $0.userID == member.id })
        XCTAssertTrue(state.resets.values.contains { $0.userID == member.id })
        XCTAssertGreaterThanOrEqual(state.sessions.values.filter { $0.userID == member.id }.count, 2)
        let bystanderRows = (
            state.sessions.values.filter { $0.userID == bystander.id }.count,
            state.resets.values.filter { $0.userID == bystander.id }.count,
            state.securityLog.filter { $0.userID == bystander.id }.count
        )

        let deleted = try await world.requestDeletion(
            tenant, token: session.token, password: Fixture.memberPassword, code: try freshCode(world, secret))
        let purgeAfter = try XCTUnwrap(deleted.purgeAfter)

        // One second before the end of the grace: nothing is purged.
        world.clock.advance(milliseconds: purgeAfter.milliseconds - world.clock.now().milliseconds - 1_000)
        var sequence = world.lastSequence
        var report = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(report, PurgeReport())
        let value19 = try await world.storedUser(tenant, member.id)?.status
        XCTAssertEqual(value19, .pendingDeletion)
        XCTAssertEqual(try world.eventTypes(after: sequence), [])

        world.clock.advance(seconds: 1)
        sequence = world.lastSequence
        report = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(report, PurgeReport(accounts: 1, tenants: 0))
        let value20 = try await world.storedUser(tenant, member.id)
        XCTAssertNil(value20)

        state = try await memoryState(world)
        XCTAssertNil(state.users[member.id])
        XCTAssertFalse(state.sessions.values.contains { $0.userID == member.id }, "sessions")
        XCTAssertFalse(state.resets.values.contains { $0.userID == member.id }, "reset tokens")
        XCTAssertNil(state.twoFactor[member.id], "2FA credential")
        XCTAssertNil(state.pendingTwoFactor[member.id], "pending enrolment")
        XCTAssertNil(state.recoveryCodes[member.id], "recovery codes")
        XCTAssertFalse(state.challenges.values.contains { $0.userID == member.id }, "challenges")
        XCTAssertFalse(state.securityLog.contains { $0.userID == member.id }, "security log")
        XCTAssertFalse(state.teamMembers.keys.contains { $0.user == member.id }, "team memberships")
        XCTAssertFalse(state.teamInvitations.values.contains { $0.invitedBy == member.id }, "invitations sent")
        XCTAssertTrue(state.teamMembers.keys.contains { $0.user == owner.id && $0.team == otherTeam.team.id })
        // The others are untouched.
        XCTAssertNotNil(state.users[owner.id])
        XCTAssertNotNil(state.users[bystander.id])
        XCTAssertEqual(state.sessions.values.filter { $0.userID == bystander.id }.count, bystanderRows.0)
        XCTAssertEqual(state.resets.values.filter { $0.userID == bystander.id }.count, bystanderRows.1)
        XCTAssertEqual(state.securityLog.filter { $0.userID == bystander.id }.count, bystanderRows.2)
        XCTAssertNotNil(state.tenants[tenant.id])

        // Each team membership that went with the account is announced
        // first (the user was in two teams), then account.purged.
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["team.member_removed", "team.member_removed", "account.purged"])
        if case .accountPurged(let user, let tenantID, let email) = events.last?.event {
            XCTAssertEqual(user, member.id)
            XCTAssertEqual(tenantID, tenant.id)
            XCTAssertEqual(email, memberEmail)
        } else {
            XCTFail("not account.purged: \(events)")
        }
        XCTAssertEqual(events.last?.record.tenantID, tenant.id)
        // Earlier events about the account stay in the outbox.
        XCTAssertTrue(try world.events().contains { $0.record.type == "account.deletion_scheduled" })

        // A second run finds nothing.
        sequence = world.lastSequence
        let value21 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(value21, PurgeReport())
        XCTAssertEqual(try world.eventTypes(after: sequence), [])
    }

    func testTheEmailIsFreeAgainAfterThePurge() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        _ = try await world.requestDeletion(tenant, token: session.token, password: Fixture.memberPassword)
        // Taken during the grace period.
        await assertDomainError(.alreadyExists, "EMAIL_TAKEN") {
            try await world.makeUser(tenant, email: memberEmail, password: Fixture.newPassword)
        }
        world.clock.advance(seconds: thirtyDays)
        try await world.accounts.deletion.purgeDueDeletions()
        let again = try await world.makeUser(tenant, email: memberEmail, password: Fixture.newPassword)
        XCTAssertNotEqual(again.id, member.id)
        XCTAssertEqual(again.status, .active)
        XCTAssertFalse(again.twoFactorEnabled)
        let signedIn = try await world.signIn(tenant, memberEmail, Fixture.newPassword)
        XCTAssertEqual(signedIn.user.id, again.id)
        // The new account starts with an empty security log (bar this sign-in).
        let value22 = try await world.securityLog(tenant, again.id).map(\.kind)
        XCTAssertEqual(value22, [.signInSucceeded])
    }

    func testManyDueAccountsArePurgedInOneRunOldestFirst() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        var ids: [UserID] = []
        for index in 0..<5 {
            let email = "m\(index)@acme.test"
            let user = try await world.makeUser(tenant, email: email)
            let session = try await world.signIn(tenant, email, Fixture.memberPassword)
            _ = try await world.requestDeletion(tenant, token: session.token, password: Fixture.memberPassword)
            ids.append(user.id)
            world.clock.advance(seconds: 60)
        }
        let due = try await world.store.read {
            try $0.usersDueForPurge(tenant: tenant.id, at: world.clock.now().adding(seconds: thirtyDays), limit: 3)
        }
        XCTAssertEqual(due.map(\.id), Array(ids.prefix(3)))
        world.clock.advance(seconds: thirtyDays)
        let value23 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(value23, PurgeReport(accounts: 5, tenants: 0))
        for id in ids { let value24 = try await world.storedUser(tenant, id); XCTAssertNil(value24) }
    }
}

// MARK: - Tenant deletion

final class TenantDeletionTests: XCTestCase {
    private let memberEmail = "member@acme.test"

    func testConfirmationIsRequired() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        for confirmation in ["delete", "DELETE ", ""] {
            let before = try await world.snapshot()
            await assertDomainError(.invalidArgument, "CONFIRMATION_REQUIRED") {
                try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: confirmation)
            }
            try await assertUnchanged(world, since: before, confirmation.debugDescription)
        }
        await assertDomainError(.notFound, "TENANT_NOT_FOUND") {
            try await world.accounts.deletion.requestTenantDeletion(tenant: "no-such-tenant", confirmation: "DELETE")
        }
    }

    func testRequestRevokesEverySessionAndRefusesSignInAndNewUsersUntilCancelled() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let (other, _) = try await world.makeTenant(slug: "other", name: "Other")
        let member = try await world.makeUser(tenant, email: memberEmail)
        let ownerSession = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let memberSession = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let otherSession = try await world.signIn(other, Fixture.ownerEmail, Fixture.ownerPassword)
        for token in [ownerSession.token, memberSession.token] {
            _ = try await world.accounts.validate(tenantReference: tenant.slug, token: token)
        }
        let now = world.clock.now()
        let sequence = world.lastSequence

        let pending = try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: "DELETE")
        XCTAssertEqual(pending.status, .pendingDeletion)
        XCTAssertEqual(pending.purgeAfter, now.adding(seconds: thirtyDays))
        let current = try await world.current(tenant)
        XCTAssertEqual(current.status, .pendingDeletion, "the tenant directory sees the change")
        XCTAssertEqual(current.purgeAfter, now.adding(seconds: thirtyDays))

        for token in [ownerSession.token, memberSession.token] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.validate(tenantReference: tenant.slug, token: token)
            }
        }
        let value25 = try await world.liveSessions(tenant, owner.id)
        XCTAssertEqual(value25, [])
        let value26 = try await world.liveSessions(tenant, member.id)
        XCTAssertEqual(value26, [])
        _ = try await world.accounts.validate(tenantReference: other.slug, token: otherSession.token)

        let events = try world.events(after: sequence)
        XCTAssertEqual(
            events.map(\.record.type).sorted(), ["session.revoked", "session.revoked", "tenant.deletion_scheduled"])
        for item in events {
            XCTAssertEqual(item.record.tenantID, tenant.id)
            if case .sessionRevoked(let session, _, let reason) = item.event {
                XCTAssertEqual(reason, "tenant_deletion")
                XCTAssertTrue([ownerSession.session.id, memberSession.session.id].contains(session))
            }
            if case .tenantDeletionScheduled(let id, let slug, _, let purgeAfter) = item.event {
                XCTAssertEqual(id, tenant.id)
                XCTAssertEqual(slug, "acme")
                XCTAssertEqual(purgeAfter, now.adding(seconds: thirtyDays))
            }
        }

        // Sign-in: the right password is told the tenant is going; a
        // wrong one learns nothing.
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(current, Fixture.ownerEmail, "not-the-password-123")
        }
        let refused = await assertDomainError(.failedPrecondition, "TENANT_PENDING_DELETION") {
            try await world.signIn(current, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        XCTAssertEqual(refused?.details["purge_after_unix"], "\(now.adding(seconds: thirtyDays).seconds)")
        await assertDomainError(.failedPrecondition, "TENANT_PENDING_DELETION") {
            try await world.signIn(current, memberEmail, Fixture.memberPassword)
        }
        await assertDomainError(.failedPrecondition, "TENANT_PENDING_DELETION") {
            try await world.makeUser(current, email: "new@acme.test")
        }
        // Asking twice: already pending.
        await assertDomainError(.failedPrecondition, "TENANT_PENDING_DELETION") {
            try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: "DELETE")
        }
        // The other tenant is untouched.
        _ = try await world.signIn(other, Fixture.ownerEmail, Fixture.ownerPassword)

        let cancelSequence = world.lastSequence
        let cancelled = try await world.accounts.deletion.cancelTenantDeletion(tenant: tenant.id.rawValue)
        XCTAssertEqual(cancelled.status, .active)
        XCTAssertNil(cancelled.purgeAfter)
        XCTAssertEqual(try world.eventTypes(after: cancelSequence), ["tenant.deletion_cancelled"])
        let active = try await world.current(tenant)
        XCTAssertEqual(active.status, .active)
        let again = try await world.signIn(active, memberEmail, Fixture.memberPassword)
        _ = try await world.accounts.validate(tenantReference: tenant.slug, token: again.token)
        _ = try await world.makeUser(active, email: "new@acme.test")
        await assertDomainError(.failedPrecondition, "NOT_PENDING_DELETION") {
            try await world.accounts.deletion.cancelTenantDeletion(tenant: tenant.slug)
        }
        // Cancelled: the purge job leaves it alone.
        world.clock.advance(seconds: 2 * thirtyDays)
        let value27 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(value27, PurgeReport())
        let value28 = try await world.current(tenant).status
        XCTAssertEqual(value28, .active)
    }

    func testTenantPurgeDeletesEveryUserAndRowAndFreesTheSlug() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let (other, otherOwner) = try await world.makeTenant(slug: "other", name: "Other")
        let member = try await world.makeUser(tenant, email: memberEmail)
        let admin = try await world.makeUser(tenant, email: "admin@acme.test", password: Fixture.adminPassword, role: .admin)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let secret = try await enableTwoFactorForDeletion(world, tenant, token: session.token, password: Fixture.memberPassword)
        _ = secret
        _ = try await world.signIn(tenant, "admin@acme.test", Fixture.adminPassword)
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: "admin@acme.test", client: Fixture.client)
        _ = try await world.signIn(other, Fixture.ownerEmail, Fixture.ownerPassword)
        // The admin's own deletion is pending too when the tenant goes.
        let adminSession = try await world.signIn(tenant, "admin@acme.test", Fixture.adminPassword)
        _ = try await world.requestDeletion(tenant, token: adminSession.token, password: Fixture.adminPassword)

        let pending = try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: "DELETE")
        let purgeAfter = try XCTUnwrap(pending.purgeAfter)

        world.clock.advance(milliseconds: purgeAfter.milliseconds - world.clock.now().milliseconds - 1_000)
        var sequence = world.lastSequence
        let value29 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(value29, PurgeReport())
        let value30 = try await world.current(tenant).status
        XCTAssertEqual(value30, .pendingDeletion)
        XCTAssertEqual(try world.eventTypes(after: sequence), [])

        world.clock.advance(seconds: 1)
        sequence = world.lastSequence
        let report = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(report.tenants, 1)
        XCTAssertEqual(report.accounts, 0, "the accounts went with the tenant")

        await assertDomainError(.notFound, "TENANT_NOT_FOUND") { try await world.current(tenant) }
        await assertDomainError(.notFound, "TENANT_NOT_FOUND") { try await world.accounts.tenant(reference: "acme") }
        let state = try await memoryState(world)
        let gone: Set<UserID> = [owner.id, member.id, admin.id]
        XCTAssertNil(state.tenants[tenant.id])
        XCTAssertFalse(state.users.values.contains { $0.tenantID == tenant.id })
        XCTAssertFalse(state.sessions.values.contains { $0.tenantID == tenant.id || gone.contains($0.userID) })
        XCTAssertFalse(state.resets.values.contains { $0.tenantID == tenant.id })
        XCTAssertFalse(state.securityLog.contains { $0.tenantID == tenant.id })
        XCTAssertFalse(state.twoFactor.values.contains { $0.tenantID == tenant.id })
        XCTAssertFalse(state.pendingTwoFactor.values.contains { $0.tenantID == tenant.id })
        XCTAssertFalse(state.recoveryCodes.keys.contains { gone.contains($0) })
        XCTAssertFalse(state.challenges.values.contains { $0.tenantID == tenant.id })
        // The other tenant keeps everything.
        XCTAssertNotNil(state.tenants[other.id])
        XCTAssertNotNil(state.users[otherOwner.id])
        XCTAssertFalse(state.sessions.values.filter { $0.tenantID == other.id }.isEmpty)

        // One account.purged per member (for services that key data by
        // user), then tenant.purged.
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["account.purged", "account.purged", "account.purged", "tenant.purged"])
        let purgedUsers = events.compactMap { entry -> UserID? in
            if case .accountPurged(let user, let tenantID, _) = entry.event, tenantID == tenant.id { return user }
            return nil
        }
        XCTAssertEqual(Set(purgedUsers), gone)
        if case .tenantPurged(let id, let slug, let name, let users) = events.last?.event {
            XCTAssertEqual(id, tenant.id)
            XCTAssertEqual(slug, "acme")
            XCTAssertEqual(name, "Acme")
            XCTAssertEqual(users, 3)
        } else {
            XCTFail("not tenant.purged: \(events)")
        }
        let value31 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(value31, PurgeReport())

        // The slug (and the owner's email in it) are free again.
        let (fresh, freshOwner) = try await world.makeTenant()
        XCTAssertNotEqual(fresh.id, tenant.id)
        let value32 = try await world.accounts.tenant(reference: "acme").id
        XCTAssertEqual(value32, fresh.id)
        let signedIn = try await world.signIn(fresh, Fixture.ownerEmail, Fixture.ownerPassword)
        XCTAssertEqual(signedIn.user.id, freshOwner.id)
    }

    /// A sign-in whose password was checked before the tenant deletion and
    /// whose second factor comes after it must not get a session.
    func testAChallengeIssuedBeforeTheTenantDeletionCannotBeCompletedAfterIt() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let secret = try await enableTwoFactorForDeletion(world, tenant, token: session.token, password: Fixture.memberPassword)
        guard case .secondFactorRequired(let challenge) = try await world.accounts.signIn.beginSignIn(
            tenant: tenant, email: memberEmail, password: Fixture.memberPassword, client: Fixture.client)
        else { return XCTFail("expected a challenge") }
        _ = try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: "DELETE")
        let pending = try await world.current(tenant)
        let code = try freshCode(world, secret)
        do {
            let result = try await world.accounts.signIn.completeSignIn(
                tenant: pending, challenge: challenge.token, code: code, recoveryCode: "", client: Fixture.client)
            let validates = (try? await world.accounts.validate(tenantReference: tenant.slug, token: result.token)) != nil
            XCTFail("BUG: a session was created in a tenant pending deletion (validates: \(validates))")
        } catch let error as DomainError {
            XCTAssertTrue(
                ["TENANT_PENDING_DELETION", "CHALLENGE_INVALID"].contains(error.reason), "\(error)")
        }
    }

    /// A password sign-in whose tenant was resolved (active) before the
    /// tenant deletion and whose session is written after it must not
    /// leave a live session in the pending tenant. The write is held
    /// deterministically (no timing).
    func testAPasswordSignInRacingTheTenantDeletionLeavesNoLiveSession() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: memberEmail)
        let held = HeldWriteStore(inner: world.store)
        let racing = AccountService(store: held, hasher: world.hasher, clock: world.clock)
        held.holdNextWrite()
        let email = memberEmail
        let signIn = Task {
            try await racing.signIn.signIn(tenant: tenant, email: email, password: Fixture.memberPassword, client: Fixture.client)
        }
        await held.waitUntilHoldingWrite()
        _ = try await world.accounts.deletion.requestTenantDeletion(tenant: tenant.slug, confirmation: "DELETE")
        held.releaseWrite()
        _ = await signIn.result  // refused (TENANT_PENDING_DELETION) or revoked: either is fine
        let live = try await world.liveSessions(tenant, member.id)
        XCTAssertEqual(live.map(\.id), [], "a live session in a tenant pending deletion")
    }

    /// Same for an account: a challenge issued before the account deletion
    /// cannot be completed while it is pending.
    func testAChallengeIssuedBeforeTheAccountDeletionCannotBeCompletedAfterIt() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        let secret = try await enableTwoFactorForDeletion(world, tenant, token: session.token, password: Fixture.memberPassword)
        guard case .secondFactorRequired(let challenge) = try await world.accounts.signIn.beginSignIn(
            tenant: tenant, email: memberEmail, password: Fixture.memberPassword, client: Fixture.client)
        else { return XCTFail("expected a challenge") }
        _ = try await world.requestDeletion(
            tenant, token: session.token, password: Fixture.memberPassword, code: try freshCode(world, secret))
        await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
            try await world.accounts.signIn.completeSignIn(
                tenant: tenant, challenge: challenge.token, code: try freshCode(world, secret), recoveryCode: "",
                client: Fixture.client)
        }
    }
}
