import MoatCrypto
import XCTest

@testable import MoatCore

/// A forgotten password during the deletion grace period: the reset link
/// restores the account (with a code when 2FA is on).
final class ResetDuringGraceTests: XCTestCase {
    private let memberEmail = "member@acme.test"

    private func pendingMember(_ world: World, twoFactor: Bool = false) async throws
        -> (tenant: Tenant, user: User, secret: [UInt8]?)
    {
        let (tenant, _) = try await world.makeTenant()
        let user = try await world.makeUser(tenant, email: memberEmail)
        let session = try await world.signIn(tenant, memberEmail, Fixture.memberPassword)
        var secret: [UInt8]?
        var code = ""
        if twoFactor {
            let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
                tenant: tenant, token: session.token, password: Fixture.memberPassword, client: Fixture.client)
            let key = try XCTUnwrap(Base32.decode(enrollment.secretBase32.replacingOccurrences(of: " ", with: "")))
            _ = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: session.token, code: try TOTP(secret: key).code(at: world.clock.now().seconds),
                client: Fixture.client)
            world.clock.advance(seconds: 30)
            code = try TOTP(secret: key).code(at: world.clock.now().seconds)
            secret = key
        }
        _ = try await world.accounts.deletion.requestAccountDeletion(
            tenant: tenant, token: session.token, confirmation: "DELETE", password: Fixture.memberPassword, code: code,
            client: Fixture.client)
        let found1 = try await world.storedUser(tenant, user.id)?.status
        XCTAssertEqual(found1, .pendingDeletion)
        return (tenant, user, secret)
    }

    private func requestReset(_ world: World, _ tenant: Tenant) async throws -> (token: String, restores: Bool) {
        let before = world.lastSequence
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: memberEmail, client: Fixture.otherClient)
        for item in try world.events(after: before) {
            if case .passwordResetRequested(_, _, let token, _, _, _, let restores) = item.event { return (token, restores) }
        }
        XCTFail("no password_reset.requested")
        return ("", false)
    }

    func testAResetDuringTheGracePeriodRestoresTheAccount() async throws {
        let world = try World()
        let (tenant, user, _) = try await pendingMember(world)
        let (token, restores) = try await requestReset(world, tenant)
        XCTAssertTrue(restores, "the link's event says it restores the account")

        let before = world.lastSequence
        _ = try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: Fixture.newPassword)
        let stored = try await world.storedUser(tenant, user.id)
        XCTAssertEqual(stored?.status, .active)
        XCTAssertNil(stored?.purgeAfter)
        XCTAssertEqual(try world.events(after: before).map(\.record.type), ["password.reset", "account.restored"])
        let log = try await world.securityLog(tenant, user.id)
        XCTAssertEqual(log.suffix(2).map(\.kind), [.passwordReset, .accountRestored])
        // The new password signs in; the token is spent.
        _ = try await world.signIn(tenant, memberEmail, Fixture.newPassword)
        do {
            _ = try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: "another-pass-9924-x")
            XCTFail("a spent token")
        } catch let error as DomainError {
            XCTAssertEqual(error.reason, "RESET_TOKEN_INVALID")
        }
    }

    func testWithTwoFactorOnTheRestoringResetNeedsACode() async throws {
        let world = try World()
        let (tenant, user, secret) = try await pendingMember(world, twoFactor: true)
        let key = try XCTUnwrap(secret)
        let (token, restores) = try await requestReset(world, tenant)
        XCTAssertTrue(restores)

        // No code: refused before the token is spent.
        do {
            _ = try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: Fixture.newPassword)
            XCTFail("a code is required")
        } catch let error as DomainError {
            XCTAssertEqual(error.reason, "CODE_REQUIRED")
        }
        // A wrong code: refused, nothing spent or changed.
        world.clock.advance(seconds: 30)
        let now = world.clock.now().seconds
        let valid = Set(try [-30, 0, 30].map { try TOTP(secret: key).code(at: now + Int64($0)) })
        let wrong = ["000000", "111111", "222222"].first { !valid.contains($0) } ?? "333333"
        do {
            _ = try await world.accounts.passwords.resetPassword(
                tenant: tenant, token: token, newPassword: Fixture.newPassword, code: wrong)
            XCTFail("a wrong code")
        } catch let error as DomainError {
            XCTAssertEqual(error.kind, .unauthenticated)
        }
        let found2 = try await world.storedUser(tenant, user.id)?.status
        XCTAssertEqual(found2, .pendingDeletion)
        let found3 = try await world.resetRecord(tenant, token: token)?.usedAt
        XCTAssertNil(found3)

        // The right code restores it; signing in still asks for the second factor.
        _ = try await world.accounts.passwords.resetPassword(
            tenant: tenant, token: token, newPassword: Fixture.newPassword,
            code: try TOTP(secret: key).code(at: world.clock.now().seconds))
        let found4 = try await world.storedUser(tenant, user.id)?.status
        XCTAssertEqual(found4, .active)
        guard case .secondFactorRequired = try await world.accounts.signIn.beginSignIn(
            tenant: tenant, email: memberEmail, password: Fixture.newPassword, client: Fixture.client)
        else { return XCTFail("2FA is still on") }
    }

    func testNoRestoringResetAfterTheGracePeriodOrInATenantPendingDeletion() async throws {
        let world = try World()
        let (tenant, user, _) = try await pendingMember(world)
        let (token, _) = try await requestReset(world, tenant)
        world.clock.advance(seconds: 30 * 86400)
        do {
            _ = try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: Fixture.newPassword)
            XCTFail("the grace period is over")
        } catch let error as DomainError {
            XCTAssertEqual(error.reason, "RESET_TOKEN_INVALID")
        }
        let found5 = try await world.storedUser(tenant, user.id)?.status
        XCTAssertEqual(found5, .pendingDeletion)
        // And no new link goes out then: the answer is the unknown-email one.
        let before = world.lastSequence
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: memberEmail, client: Fixture.client)
        XCTAssertEqual(try world.events(after: before).map(\.record.type), ["password_reset.unknown_email"])

        // A tenant pending deletion sends no restoring link either.
        let other = try World()
        let (otherTenant, _, _) = try await pendingMember(other)
        _ = try await other.accounts.deletion.requestTenantDeletion(tenant: otherTenant.id.rawValue, confirmation: "DELETE")
        let pendingTenant = try await other.accounts.tenant(reference: otherTenant.id.rawValue)
        let mark = other.lastSequence
        try await other.accounts.passwords.requestPasswordReset(tenant: pendingTenant, email: memberEmail, client: Fixture.client)
        XCTAssertEqual(try other.events(after: mark).map(\.record.type), ["password_reset.unknown_email"])
    }

    func testAResetForAnActiveAccountDoesNotSayItRestores() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        try await world.makeUser(tenant, email: memberEmail)
        let found6 = try await requestReset(world, tenant).restores
        XCTAssertFalse(found6)
    }
}
