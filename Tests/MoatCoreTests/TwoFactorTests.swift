import Foundation
import MoatCrypto
import XCTest

@testable import MoatCore

// MARK: Support

/// A user with 2FA on: their tenant, a session made before 2FA, and what
/// the enrolment showed them once.
struct EnrolledUser: Sendable {
    var tenant: Tenant
    var user: User
    var email: String
    var password: String
    /// A session token from before 2FA was turned on (still valid).
    var token: String
    var secret: [UInt8]
    var recoveryCodes: [String]
}

/// The authenticator app: the code of the step `offset` steps from now.
func totpCode(_ secret: [UInt8], _ clock: ManualClock, offset: Int64 = 0) throws -> String {
    try TOTP(secret: secret).code(at: clock.now().seconds + 30 * offset)
}

/// A six-digit code matching none of the steps a check at this time looks at.
func wrongTOTPCode(_ secret: [UInt8], _ clock: ManualClock, seed: Int = 0) throws -> String {
    let near = try Set((-2...2).map { try totpCode(secret, clock, offset: Int64($0)) })
    var candidate = 123_456 + seed * 7919
    while near.contains(String(format: "%06d", candidate % 1_000_000)) { candidate += 1 }
    return String(format: "%06d", candidate % 1_000_000)
}

/// A well-formed recovery code that was never issued.
func unissuedRecoveryCode(_ seed: Int = 0) -> String {
    let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
    let symbols = (0..<10).map { alphabet[($0 * 7 + seed * 3 + 5) % alphabet.count] }
    return String(symbols[0..<5]) + "-" + String(symbols[5...])
}

extension World {
    /// The secret of an enrolment as the user types it from the screen.
    static func secretBytes(_ enrollment: TwoFactorEnrollment) throws -> [UInt8] {
        try XCTUnwrap(Base32.decode(enrollment.secretBase32.replacingOccurrences(of: " ", with: "")))
    }

    /// Signs `email` in (2FA off), enrols and confirms an authenticator.
    /// Leaves the clock one step after the confirming code's step.
    func enableTwoFactor(
        _ tenant: Tenant, email: String = Fixture.ownerEmail, password: String = Fixture.ownerPassword
    ) async throws -> EnrolledUser {
        let session = try await signIn(tenant, email, password)
        let enrollment = try await accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: password, client: Fixture.client)
        let secret = try Self.secretBytes(enrollment)
        let (codes, _) = try await accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: session.token, code: try totpCode(secret, clock), client: Fixture.client)
        clock.advance(seconds: 30)
        let stored = try await storedUser(tenant, session.user.id)
        let user = try XCTUnwrap(stored)
        return EnrolledUser(
            tenant: tenant, user: user, email: email, password: password, token: session.token, secret: secret,
            recoveryCodes: codes)
    }

    /// Thrown when a sign-in gave a session where a challenge was due.
    struct MissingChallenge: Error {}

    /// A password sign-in of a user with 2FA: the challenge it must give.
    func challenge(_ enrolled: EnrolledUser, client: ClientDetails = Fixture.client) async throws
        -> SecondFactorChallenge
    {
        let outcome = try await accounts.signIn.beginSignIn(
            tenant: enrolled.tenant, email: enrolled.email, password: enrolled.password, client: client)
        guard case .secondFactorRequired(let challenge) = outcome else {
            XCTFail("expected a second-factor challenge, got a session")
            throw MissingChallenge()
        }
        return challenge
    }

    func complete(
        _ enrolled: EnrolledUser, _ challenge: SecondFactorChallenge, code: String = "", recoveryCode: String = ""
    ) async throws -> SignInResult {
        try await accounts.signIn.completeSignIn(
            tenant: enrolled.tenant, challenge: challenge.token, code: code, recoveryCode: recoveryCode,
            client: Fixture.otherClient)
    }

    /// Challenge and code in one go.
    func signInWithCode(_ enrolled: EnrolledUser, _ code: String) async throws -> SignInResult {
        try await complete(enrolled, try await challenge(enrolled), code: code)
    }

    func credential(_ enrolled: EnrolledUser) async throws -> TwoFactorCredential? {
        try await store.read { try $0.twoFactor(tenant: enrolled.tenant.id, user: enrolled.user.id) }
    }

    func status(_ enrolled: EnrolledUser) async throws -> TwoFactorStatus {
        try await accounts.twoFactor.twoFactorStatus(tenant: enrolled.tenant, token: enrolled.token)
    }
}

// MARK: Tests

/// TOTP two-factor authentication through the service, on the memory store
/// with a manual clock.
final class TwoFactorTests: XCTestCase {
    static let recoveryPattern = try! NSRegularExpression(
        pattern: "^[abcdefghijkmnpqrstuvwxyz23456789]{5}-[abcdefghijkmnpqrstuvwxyz23456789]{5}$")

    static func matches(_ regex: NSRegularExpression, _ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    // MARK: Enrolment

    func testBeginEnrollmentWithWrongPasswordIsRefusedAndCounted() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.accounts.twoFactor.beginTwoFactorEnrollment(
                tenant: tenant, token: session.token, password: "not-the-password-1", client: Fixture.client)
        }
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 1, "a wrong password on enrolment counts toward the sign-in lockout")
        let last = try await world.securityLog(tenant, owner.id).last
        XCTAssertEqual(last?.kind, .signInFailed)
        XCTAssertTrue(last?.detail.contains("2FA enrolment") == true, "\(String(describing: last?.detail))")
        let pending = try await world.store.read { try $0.pendingTwoFactor(tenant: tenant.id, user: owner.id) }
        XCTAssertNil(pending, "nothing pending after a refused enrolment")

        // Enough wrong passwords lock the account: enrolment answers the
        // sign-in lockout, even with the right password.
        for _ in 2...5 {
            _ = try? await world.accounts.twoFactor.beginTwoFactorEnrollment(
                tenant: tenant, token: session.token, password: "not-the-password-1", client: Fixture.client)
        }
        await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.accounts.twoFactor.beginTwoFactorEnrollment(
                tenant: tenant, token: session.token, password: Fixture.ownerPassword, client: Fixture.client)
        }
    }

    func testEnrollmentShowsA160BitSecretGroupedURIAndQRCode() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant(name: "Acme & Sons: R/D")
        let email = "jo+2fa@acme.test"
        try await world.makeUser(tenant, email: email)
        let session = try await world.signIn(tenant, email, Fixture.memberPassword)
        let now = world.clock.now()
        let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.memberPassword, client: Fixture.client)

        // 160 bits: 32 base32 characters, shown in groups of four.
        let grouped = enrollment.secretBase32
        let groups = grouped.split(separator: " ", omittingEmptySubsequences: false)
        XCTAssertEqual(groups.count, 8, grouped)
        XCTAssertTrue(groups.allSatisfy { $0.count == 4 }, grouped)
        let plain = grouped.replacingOccurrences(of: " ", with: "")
        XCTAssertTrue(plain.allSatisfy { "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains($0) }, plain)
        XCTAssertEqual(Base32.decode(plain)?.count, 20)

        // otpauth URI: issuer is the tenant's name, percent-encoded; account is the email.
        let uri = enrollment.uri
        XCTAssertTrue(
            uri.hasPrefix("otpauth://totp/Acme%20%26%20Sons%3A%20R%2FD:jo%2B2fa@acme.test?"), uri)
        XCTAssertTrue(uri.contains("secret=\(plain)&"), uri)
        XCTAssertTrue(uri.contains("&issuer=Acme%20%26%20Sons%3A%20R%2FD&"), uri)
        XCTAssertTrue(uri.hasSuffix("&algorithm=SHA1&digits=6&period=30"), uri)
        XCTAssertFalse(uri.contains(" "), uri)
        XCTAssertFalse(uri.contains("+"), "a space must never be encoded as + (\(uri))")

        XCTAssertEqual(enrollment.expiresAt, now.adding(seconds: 900))
        let status = try await world.accounts.twoFactor.twoFactorStatus(tenant: tenant, token: session.token)
        XCTAssertFalse(status.enabled)
        XCTAssertEqual(status.pendingEnrollmentExpiresAt, enrollment.expiresAt)
        XCTAssertEqual(status.recoveryCodesRemaining, 0)

        // The stored pending secret is sealed, not the plain bytes.
        let pending = try await world.store.read { try $0.pendingTwoFactor(tenant: tenant.id, user: session.user.id) }
        let sealed = try XCTUnwrap(pending).sealedSecret.box
        let secret = try World.secretBytes(enrollment)
        XCTAssertFalse(containsBytes(sealed, secret), "the secret is stored encrypted")

        // Begun, not on: sign-in still gives a session directly.
        _ = try await world.signIn(tenant, email, Fixture.memberPassword)
        let log = try await world.securityLog(tenant, session.user.id).map(\.kind)
        XCTAssertTrue(log.contains(.twoFactorEnrollmentStarted))
    }

    func testConfirmWithRightCodeEnablesAndReturnsTenRecoveryCodes() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.ownerPassword, client: Fixture.client)
        let secret = try World.secretBytes(enrollment)
        let sequence = world.lastSequence

        // A wrong code does not turn it on (and the pending one stays).
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: session.token, code: try wrongTOTPCode(secret, world.clock), client: Fixture.client)
        }
        var status = try await world.accounts.twoFactor.twoFactorStatus(tenant: tenant, token: session.token)
        XCTAssertFalse(status.enabled)
        XCTAssertNotNil(status.pendingEnrollmentExpiresAt)
        let afterWrong = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(afterWrong?.twoFactorEnabled, false)
        XCTAssertTrue(try world.events(after: sequence).isEmpty)

        // The right code, typed with a space, turns it on.
        let code = try totpCode(secret, world.clock)
        let typed = String(code.prefix(3)) + " " + String(code.suffix(3))
        let now = world.clock.now()
        let (codes, enabledAt) = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: session.token, code: typed, client: Fixture.client)
        XCTAssertEqual(enabledAt, now)
        XCTAssertEqual(codes.count, 10)
        XCTAssertEqual(Set(codes).count, 10, "recovery codes are distinct")
        for recovery in codes { XCTAssertTrue(Self.matches(Self.recoveryPattern, recovery), recovery) }

        status = try await world.accounts.twoFactor.twoFactorStatus(tenant: tenant, token: session.token)
        XCTAssertEqual(
            status,
            TwoFactorStatus(
                enabled: true, enabledAt: now, recoveryCodesRemaining: 10, pendingEnrollmentExpiresAt: nil,
                lockedUntil: nil))
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.twoFactorEnabled, true)

        // Stored: hashed recovery codes, the confirming step as the replay guard.
        let (credential, recovery) = try await world.store.read {
            (try $0.twoFactor(tenant: tenant.id, user: owner.id), try $0.recoveryCodes(tenant: tenant.id, user: owner.id))
        }
        XCTAssertEqual(credential?.lastUsedStep, now.seconds / 30, "the confirming code cannot be used again")
        XCTAssertEqual(recovery.map(\.slot), Array(0..<10))
        for (stored, plain) in zip(recovery, codes) {
            XCTAssertTrue(stored.codeHash.hasPrefix("$argon2id$"))
            XCTAssertFalse(stored.codeHash.contains(plain.replacingOccurrences(of: "-", with: "")))
        }

        // Event and log.
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["two_factor.enabled"])
        XCTAssertEqual(events.first?.event, .twoFactorEnabled(userID: owner.id, email: owner.email, replaced: false))
        let log = try await world.securityLog(tenant, owner.id).map(\.kind)
        XCTAssertEqual(Array(log.suffix(2)), [.twoFactorEnrollmentStarted, .twoFactorEnabled])

        // The pending enrolment is gone: confirming again is refused.
        world.clock.advance(seconds: 30)
        await assertDomainError(.failedPrecondition, "ENROLLMENT_NOT_STARTED") {
            try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: session.token, code: try totpCode(secret, world.clock), client: Fixture.client)
        }
        // The confirming code itself cannot sign in (same step: replay).
        world.clock.advance(seconds: -30)
        let enrolled = EnrolledUser(
            tenant: tenant, user: owner, email: Fixture.ownerEmail, password: Fixture.ownerPassword,
            token: session.token, secret: secret, recoveryCodes: codes)
        await assertDomainError(.unauthenticated, "TOTP_CODE_REUSED") {
            try await world.signInWithCode(enrolled, code)
        }
    }

    func testConfirmWithoutBeginAndAfterExpiry() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        await assertDomainError(.failedPrecondition, "ENROLLMENT_NOT_STARTED") {
            try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: session.token, code: "123456", client: Fixture.client)
        }

        let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.ownerPassword, client: Fixture.client)
        let secret = try World.secretBytes(enrollment)
        world.clock.advance(seconds: 900)
        await assertDomainError(.failedPrecondition, "ENROLLMENT_EXPIRED") {
            try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: session.token, code: try totpCode(secret, world.clock), client: Fixture.client)
        }
        let status = try await world.accounts.twoFactor.twoFactorStatus(tenant: tenant, token: session.token)
        XCTAssertFalse(status.enabled)
        XCTAssertNil(status.pendingEnrollmentExpiresAt, "an expired enrolment is not shown as pending")

        // One millisecond before the end it still confirms.
        let again = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.ownerPassword, client: Fixture.client)
        world.clock.advance(milliseconds: 900_000 - 1)
        let (codes, _) = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: session.token, code: try totpCode(try World.secretBytes(again), world.clock),
            client: Fixture.client)
        XCTAssertEqual(codes.count, 10)
    }

    func testANewBeginReplacesThePendingSecret() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let session = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let first = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.ownerPassword, client: Fixture.client)
        let second = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.ownerPassword, client: Fixture.client)
        XCTAssertNotEqual(first.secretBase32, second.secretBase32)
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: session.token, code: try totpCode(try World.secretBytes(first), world.clock),
                client: Fixture.client)
        }
        _ = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: session.token, code: try totpCode(try World.secretBytes(second), world.clock),
            client: Fixture.client)
    }

    // MARK: Signing in

    func testSignInWithTwoFactorGivesAChallengeAndNoSession() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let before = try await world.liveSessions(tenant, enrolled.user.id)

        let now = world.clock.now()
        let challenge = try await world.challenge(enrolled)
        XCTAssertEqual(challenge.expiresAt, now.adding(seconds: 300))
        XCTAssertEqual(challenge.user.id, enrolled.user.id)
        XCTAssertFalse(challenge.token.isEmpty)
        let afterChallenge = try await world.liveSessions(tenant, enrolled.user.id)
        XCTAssertEqual(afterChallenge.map(\.id), before.map(\.id), "no session before the second factor")
        // Only the hash of the challenge token is stored.
        let stored = try await world.store.read {
            try $0.signInChallenge(tenant: tenant.id, tokenHash: OpaqueToken.hash(challenge.token))
        }
        XCTAssertNotNil(stored)
        XCTAssertEqual(stored?.client, Self.bounded(Fixture.client))

        // The password-only entry point refuses to make a session.
        await assertDomainError(.failedPrecondition, "SECOND_FACTOR_REQUIRED") {
            try await world.signIn(tenant, enrolled.email, enrolled.password)
        }
        let log = try await world.securityLog(tenant, enrolled.user.id).map(\.kind)
        XCTAssertEqual(log.last, .signInSecondFactorRequired)

        // A wrong password still answers INVALID_CREDENTIALS, not a challenge.
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.accounts.signIn.beginSignIn(
                tenant: tenant, email: enrolled.email, password: "wrong-password-991", client: Fixture.client)
        }

        // Completing creates the session, marked as second-factor satisfied,
        // with the client details of the sign-in.
        let result = try await world.complete(enrolled, challenge, code: try totpCode(enrolled.secret, world.clock))
        XCTAssertTrue(result.session.secondFactorSatisfied)
        XCTAssertEqual(result.session.client, Self.bounded(Fixture.client))
        let live = try await world.liveSessions(tenant, enrolled.user.id)
        XCTAssertEqual(live.count, before.count + 1)
        let actor = try await world.actor(tenant, token: result.token)
        XCTAssertEqual(actor.userID, enrolled.user.id)
        let last = try await world.securityLog(tenant, enrolled.user.id).last
        XCTAssertEqual(last?.kind, .signInSucceeded)
        XCTAssertTrue(last?.detail.hasSuffix("with authenticator code") == true, "\(String(describing: last))")
    }

    static func bounded(_ client: ClientDetails) -> ClientDetails { AccountService.bounded(client) }

    func testCodeWindowOneStepEitherSideAndReplay() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        world.clock.advance(seconds: 300)

        // Two steps away on either side: wrong.
        for offset: Int64 in [-2, 2] {
            await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
                try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock, offset: offset))
            }
        }
        // The previous step, the current one, then the next: each accepted once.
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock, offset: -1))
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock, offset: 0))
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock, offset: 1))
        let credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.lastUsedStep, world.clock.now().seconds / 30 + 1)
        XCTAssertEqual(credential?.failedAttempts, 0, "an accepted code resets the wrong-code count")

        // After the next step was used, neither it nor an earlier one works.
        for offset: Int64 in [1, 0, -1] {
            await assertDomainError(.unauthenticated, "TOTP_CODE_REUSED") {
                try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock, offset: offset))
            }
        }
        // A reused code is logged but does not count toward the lockout.
        let after = try await world.credential(enrolled)
        XCTAssertEqual(after?.failedAttempts, 0)
        let log = try await world.securityLog(tenant, enrolled.user.id)
        XCTAssertEqual(log.filter { $0.kind == .twoFactorFailed && $0.detail == "reused code" }.count, 3)

        // Two steps later a fresh code works again.
        world.clock.advance(seconds: 60)
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
    }

    func testAnAcceptedCodeIsRefusedTheSecondTime() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let code = try totpCode(enrolled.secret, world.clock)
        _ = try await world.signInWithCode(enrolled, code)
        let sessions = try await world.liveSessions(tenant, enrolled.user.id).count
        await assertDomainError(.unauthenticated, "TOTP_CODE_REUSED") {
            try await world.signInWithCode(enrolled, code)
        }
        // Step-up checks share the same replay guard.
        await assertDomainError(.unauthenticated, "TOTP_CODE_REUSED") {
            try await world.accounts.twoFactor.verifyTwoFactor(
                tenant: tenant, token: enrolled.token, code: code, client: Fixture.client)
        }
        let after = try await world.liveSessions(tenant, enrolled.user.id).count
        XCTAssertEqual(after, sessions)
    }

    func testConcurrentCompletionsWithTheSameCodeMakeExactlyOneSession() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        var challenges: [SecondFactorChallenge] = []
        for _ in 0..<8 { challenges.append(try await world.challenge(enrolled)) }
        let before = try await world.liveSessions(tenant, enrolled.user.id).count
        let code = try totpCode(enrolled.secret, world.clock)

        let outcomes = await withTaskGroup(of: String.self) { group in
            for challenge in challenges {
                group.addTask {
                    do {
                        _ = try await world.complete(enrolled, challenge, code: code)
                        return "ok"
                    } catch let error as DomainError {
                        return error.reason
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        XCTAssertEqual(outcomes.filter { $0 == "ok" }.count, 1, "\(outcomes)")
        XCTAssertEqual(outcomes.filter { $0 == "TOTP_CODE_REUSED" }.count, 7, "\(outcomes)")
        let after = try await world.liveSessions(tenant, enrolled.user.id).count
        XCTAssertEqual(after, before + 1)
    }

    /// Two services on one store (two daemons, no shared in-process queue):
    /// the store's conditional update alone lets one code make one session.
    func testTwoServicesOnOneStoreSpendACodeOnce() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let services = (0..<4).map { _ in
            AccountService(store: world.store, hasher: world.hasher, clock: world.clock, secrets: world.accounts.secrets)
        }
        var challenges: [SecondFactorChallenge] = []
        for _ in services { challenges.append(try await world.challenge(enrolled)) }
        let code = try totpCode(enrolled.secret, world.clock)
        let recovery = enrolled.recoveryCodes[2]
        for useRecovery in [false, true] {
            if useRecovery {
                challenges = []
                for _ in services { challenges.append(try await world.challenge(enrolled)) }
            }
            let pairs = Array(zip(services, challenges))
            let outcomes = await withTaskGroup(of: String.self) { group in
                for (service, challenge) in pairs {
                    group.addTask {
                        do {
                            _ = try await service.signIn.completeSignIn(
                                tenant: tenant, challenge: challenge.token, code: useRecovery ? "" : code,
                                recoveryCode: useRecovery ? recovery : "", client: Fixture.client)
                            return "ok"
                        } catch let error as DomainError {
                            return error.reason
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
            XCTAssertEqual(outcomes.filter { $0 == "ok" }.count, 1, "\(useRecovery ? "recovery" : "totp"): \(outcomes)")
            XCTAssertTrue(
                outcomes.allSatisfy { ["ok", "TOTP_CODE_REUSED", "RECOVERY_CODE_INVALID"].contains($0) }, "\(outcomes)")
        }
    }

    /// A code checked against the old authenticator (or an old recovery
    /// code) must not be spent against the new one when a re-enrolment is
    /// confirmed between the check and the write.
    func testACodeOfTheReplacedAuthenticatorIsNotAcceptedAfterTheSwap() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let held = HeldWriteStore(inner: world.store)
        let racing = AccountService(store: held, hasher: world.hasher, clock: world.clock, secrets: world.accounts.secrets)

        for useRecovery in [true, false] {
            let current = try await world.store.read { try $0.twoFactor(tenant: tenant.id, user: enrolled.user.id) }
            let oldSecret = current?.sealedSecret
            let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
                tenant: tenant, token: enrolled.token, password: enrolled.password, client: Fixture.client)
            let newSecret = try World.secretBytes(enrollment)
            let challenge = try await world.challenge(enrolled)
            // The old secret and codes, as the sign-in in flight checks them.
            let oldBytes = try world.accounts.secrets.openTOTPSecret(
                try XCTUnwrap(oldSecret), tenant: tenant.id, user: enrolled.user.id)
            let oldRecovery = enrolled.recoveryCodes[useRecovery ? 6 : 7]
            let oldNextStepCode = try totpCode(oldBytes, world.clock, offset: 1)
            held.holdNextWrite()
            let inFlight = Task {
                try await racing.signIn.completeSignIn(
                    tenant: tenant, challenge: challenge.token, code: useRecovery ? "" : oldNextStepCode,
                    recoveryCode: useRecovery ? oldRecovery : "", client: Fixture.client)
            }
            await held.waitUntilHoldingWrite()
            // The user confirms the new authenticator meanwhile.
            _ = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
                tenant: tenant, token: enrolled.token, code: try totpCode(newSecret, world.clock), client: Fixture.client)
            held.releaseWrite()
            do {
                _ = try await inFlight.value
                XCTFail("\(useRecovery ? "an old recovery code" : "an old authenticator code") signed in after the swap")
            } catch let error as DomainError {
                XCTAssertEqual(error.kind, .unauthenticated, "\(error)")
            }
            let status = try await world.status(enrolled)
            XCTAssertEqual(status.recoveryCodesRemaining, 10, "no new recovery code was spent")
            world.clock.advance(seconds: 90)
        }
    }

    func testChallengeIsSingleUseExpiresAndBelongsToItsTenant() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let (other, _) = try await world.makeTenant(slug: "other", name: "Other", ownerEmail: "boss@other.test")
        let enrolled = try await world.enableTwoFactor(tenant)

        // Another tenant: refused, and the challenge is still good at home.
        let challenge = try await world.challenge(enrolled)
        await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
            try await world.accounts.signIn.completeSignIn(
                tenant: other, challenge: challenge.token, code: try totpCode(enrolled.secret, world.clock),
                recoveryCode: "", client: Fixture.client)
        }
        _ = try await world.complete(enrolled, challenge, code: try totpCode(enrolled.secret, world.clock))

        // Used: refused even with a fresh code, and the code is not spent.
        world.clock.advance(seconds: 30)
        let fresh = try totpCode(enrolled.secret, world.clock)
        await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
            try await world.complete(enrolled, challenge, code: fresh)
        }
        _ = try await world.signInWithCode(enrolled, fresh)

        // Expired after 5 minutes (and just before, it works).
        world.clock.advance(seconds: 30)
        let late = try await world.challenge(enrolled)
        world.clock.advance(seconds: 300)
        await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
            try await world.complete(enrolled, late, code: try totpCode(enrolled.secret, world.clock))
        }
        let timely = try await world.challenge(enrolled)
        world.clock.advance(milliseconds: 300_000 - 1)
        _ = try await world.complete(enrolled, timely, code: try totpCode(enrolled.secret, world.clock))

        // Garbage challenges.
        for token in ["", "x", String(repeating: "a", count: 300), OpaqueToken.make()] {
            await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
                try await world.accounts.signIn.completeSignIn(
                    tenant: tenant, challenge: token, code: "123456", recoveryCode: "", client: Fixture.client)
            }
        }
        // Exactly one of code and recovery code.
        let both = try await world.challenge(enrolled)
        await assertDomainError(.invalidArgument, "CODE_REQUIRED") {
            try await world.complete(enrolled, both)
        }
        await assertDomainError(.invalidArgument, "CODE_REQUIRED") {
            try await world.complete(enrolled, both, code: "123456", recoveryCode: enrolled.recoveryCodes[0])
        }
    }

    func testAnExpiredChallengeDoesNotSpendTheCode() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let challenge = try await world.challenge(enrolled)
        world.clock.advance(seconds: 300)
        let code = try totpCode(enrolled.secret, world.clock)
        await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
            try await world.complete(enrolled, challenge, code: code)
        }
        _ = try await world.signInWithCode(enrolled, code)
    }

    // MARK: Lockout

    func testFiveWrongCodesLockTheSecondFactorForFifteenMinutes() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let challenge = try await world.challenge(enrolled)
        for attempt in 1...4 {
            await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
                try await world.complete(enrolled, challenge, code: try wrongTOTPCode(enrolled.secret, world.clock, seed: attempt))
            }
        }
        var credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 4)
        XCTAssertNil(credential?.lockedUntil)
        let lockedAt = world.clock.now()
        let locking = await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.complete(enrolled, challenge, code: try wrongTOTPCode(enrolled.secret, world.clock, seed: 5))
        }
        XCTAssertEqual(locking?.details["retry_after_seconds"], "900")
        credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.lockedUntil, lockedAt.adding(seconds: 900))
        var status = try await world.status(enrolled)
        XCTAssertEqual(status.lockedUntil, lockedAt.adding(seconds: 900))
        let kinds = try await world.securityLog(tenant, enrolled.user.id).map(\.kind)
        XCTAssertEqual(kinds.filter { $0 == .twoFactorFailed }.count, 4)
        XCTAssertEqual(kinds.last, .twoFactorLocked)

        // While locked even the right code (or a recovery code) is refused,
        // on a fresh challenge too, and nothing is spent.
        world.clock.advance(seconds: 600)
        let right = try totpCode(enrolled.secret, world.clock)
        let whileLocked = await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.signInWithCode(enrolled, right)
        }
        XCTAssertEqual(whileLocked?.details["retry_after_seconds"], "300")
        await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[0])
        }
        await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.accounts.twoFactor.verifyTwoFactor(
                tenant: tenant, token: enrolled.token, code: right, client: Fixture.client)
        }
        world.clock.advance(milliseconds: 300_000 - 1)
        let lastMillisecond = await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
        }
        XCTAssertEqual(lastMillisecond?.details["retry_after_seconds"], "1")
        credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 5, "locked attempts are not counted")

        // After 15 minutes the right code works and the count resets.
        world.clock.advance(milliseconds: 1)
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
        credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 0)
        XCTAssertNil(credential?.lockedUntil)
        status = try await world.status(enrolled)
        XCTAssertNil(status.lockedUntil)
        // One wrong code now is one, not six.
        world.clock.advance(seconds: 30)
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.signInWithCode(enrolled, try wrongTOTPCode(enrolled.secret, world.clock))
        }
        credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 1)
    }

    func testLockoutCountsAcrossChallengesAndSurvivesANewPasswordSignIn() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        for attempt in 1...4 {
            // A fresh challenge each time: the count is the user's, not the challenge's.
            await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
                try await world.signInWithCode(enrolled, try wrongTOTPCode(enrolled.secret, world.clock, seed: attempt))
            }
        }
        // Step-up verification shares the count.
        await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.accounts.twoFactor.verifyTwoFactor(
                tenant: tenant, token: enrolled.token, code: try wrongTOTPCode(enrolled.secret, world.clock),
                client: Fixture.client)
        }
        await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
        }
    }

    func testALapsedLockStartsAFreshCount() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        for attempt in 1...5 {
            _ = try? await world.signInWithCode(enrolled, try wrongTOTPCode(enrolled.secret, world.clock, seed: attempt))
        }
        world.clock.advance(seconds: 900)
        // The lock ran out without a success: one wrong code is not a new lock.
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.signInWithCode(enrolled, try wrongTOTPCode(enrolled.secret, world.clock))
        }
        let credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 1)
    }

    // MARK: Recovery codes

    func testRecoveryCodesWorkOnceAndCount() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let sequence = world.lastSequence

        let result = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[3])
        XCTAssertTrue(result.session.secondFactorSatisfied)
        var status = try await world.status(enrolled)
        XCTAssertEqual(status.recoveryCodesRemaining, 9)
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["two_factor.recovery_code_used"])
        XCTAssertEqual(
            events.first?.event,
            .twoFactorRecoveryCodeUsed(userID: enrolled.user.id, email: enrolled.user.email, remaining: 9))
        let log = try await world.securityLog(tenant, enrolled.user.id)
        XCTAssertTrue(log.contains { $0.kind == .twoFactorRecoveryCodeUsed && $0.detail == "9 left" })
        XCTAssertTrue(log.last?.detail.hasSuffix("with recovery code") == true)

        // Used: refused and counted toward the lockout.
        await assertDomainError(.unauthenticated, "RECOVERY_CODE_INVALID") {
            try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[3])
        }
        var credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 1)

        // As typed: upper case, spaces instead of the hyphen. A success resets the count.
        let typed = enrolled.recoveryCodes[0].uppercased().replacingOccurrences(of: "-", with: " ")
        _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: typed)
        credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 0)
        status = try await world.status(enrolled)
        XCTAssertEqual(status.recoveryCodesRemaining, 8)
        let second = try world.events(after: sequence).last?.event
        XCTAssertEqual(
            second, .twoFactorRecoveryCodeUsed(userID: enrolled.user.id, email: enrolled.user.email, remaining: 8))

        // Wrong ones (unissued, malformed) count: the fifth locks.
        for wrong in [unissuedRecoveryCode(1), "not-a-code", unissuedRecoveryCode(2), "", "0000000000"] {
            let challenge = try await world.challenge(enrolled)
            if wrong.isEmpty {
                await assertDomainError(.invalidArgument, "CODE_REQUIRED") {
                    try await world.complete(enrolled, challenge, recoveryCode: wrong)
                }
                continue
            }
            await assertDomainError(.unauthenticated, "RECOVERY_CODE_INVALID") {
                try await world.complete(enrolled, challenge, recoveryCode: wrong)
            }
        }
        credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 4)
        // The fifth: a used code, which locks.
        await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[3])
        }
        await assertDomainError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
            try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[5])
        }
        status = try await world.status(enrolled)
        XCTAssertEqual(status.recoveryCodesRemaining, 8, "nothing spent while locked")
    }

    func testEveryRecoveryCodeWorksExactlyOnce() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        for (index, code) in enrolled.recoveryCodes.enumerated() {
            _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: code)
            let status = try await world.status(enrolled)
            XCTAssertEqual(status.recoveryCodesRemaining, 9 - index)
        }
        // All spent: a TOTP code still works, 2FA stays on.
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
        let status = try await world.status(enrolled)
        XCTAssertTrue(status.enabled)
    }

    func testConcurrentUsesOfOneRecoveryCodeMakeOneSession() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        var challenges: [SecondFactorChallenge] = []
        for _ in 0..<4 { challenges.append(try await world.challenge(enrolled)) }
        let code = enrolled.recoveryCodes[7]
        let wins = await withTaskGroup(of: Bool.self) { group in
            for challenge in challenges {
                group.addTask { (try? await world.complete(enrolled, challenge, recoveryCode: code)) != nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(wins, 1)
        let status = try await world.status(enrolled)
        XCTAssertEqual(status.recoveryCodesRemaining, 9)
    }

    func testRegenerateReplacesTheRecoveryCodes() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[0])

        await assertDomainError(.invalidArgument, "CODE_REQUIRED") {
            try await world.accounts.twoFactor.regenerateRecoveryCodes(
                tenant: tenant, token: enrolled.token, code: "", client: Fixture.client)
        }
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.accounts.twoFactor.regenerateRecoveryCodes(
                tenant: tenant, token: enrolled.token, code: try wrongTOTPCode(enrolled.secret, world.clock),
                client: Fixture.client)
        }
        let sequence = world.lastSequence
        let fresh = try await world.accounts.twoFactor.regenerateRecoveryCodes(
            tenant: tenant, token: enrolled.token, code: try totpCode(enrolled.secret, world.clock), client: Fixture.client)
        XCTAssertEqual(fresh.count, 10)
        XCTAssertEqual(Set(fresh).count, 10)
        XCTAssertTrue(Set(fresh).isDisjoint(with: enrolled.recoveryCodes))
        for code in fresh { XCTAssertTrue(Self.matches(Self.recoveryPattern, code), code) }
        let status = try await world.status(enrolled)
        XCTAssertEqual(status.recoveryCodesRemaining, 10)
        XCTAssertEqual(
            try world.events(after: sequence).map(\.event),
            [.twoFactorRecoveryCodesRegenerated(userID: enrolled.user.id, email: enrolled.user.email)])
        let log = try await world.securityLog(tenant, enrolled.user.id).map(\.kind)
        XCTAssertEqual(log.last, .twoFactorRecoveryCodesRegenerated)

        // Old codes (used or not) are dead; the new ones work.
        for old in enrolled.recoveryCodes.prefix(2) {
            await assertDomainError(.unauthenticated, "RECOVERY_CODE_INVALID") {
                try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: old)
            }
        }
        _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: fresh[9])
    }

    // MARK: Disabling

    func testDisableWithPassword() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.accounts.twoFactor.disableTwoFactor(
                tenant: tenant, token: enrolled.token, code: "", password: "wrong-password-52", client: Fixture.client)
        }
        let counted = try await world.storedUser(tenant, enrolled.user.id)
        XCTAssertEqual(counted?.failedSignIns, 1)
        XCTAssertEqual(counted?.twoFactorEnabled, true)

        let sequence = world.lastSequence
        try await world.accounts.twoFactor.disableTwoFactor(
            tenant: tenant, token: enrolled.token, code: "", password: enrolled.password, client: Fixture.client)
        let status = try await world.status(enrolled)
        XCTAssertEqual(
            status,
            TwoFactorStatus(
                enabled: false, enabledAt: nil, recoveryCodesRemaining: 0, pendingEnrollmentExpiresAt: nil,
                lockedUntil: nil))
        let user = try await world.storedUser(tenant, enrolled.user.id)
        XCTAssertEqual(user?.twoFactorEnabled, false)
        let codes = try await world.store.read { try $0.recoveryCodes(tenant: tenant.id, user: enrolled.user.id) }
        XCTAssertTrue(codes.isEmpty)
        XCTAssertEqual(
            try world.events(after: sequence).map(\.event),
            [.twoFactorDisabled(userID: enrolled.user.id, email: enrolled.user.email, method: "password")])
        let last = try await world.securityLog(tenant, enrolled.user.id).last
        XCTAssertEqual(last?.kind, .twoFactorDisabled)
        XCTAssertEqual(last?.detail, "with password")

        // Sign-in gives a session directly again.
        let session = try await world.signIn(tenant, enrolled.email, enrolled.password)
        XCTAssertFalse(session.session.secondFactorSatisfied)
        // Disabling again: not on.
        await assertDomainError(.failedPrecondition, "TWO_FACTOR_NOT_ENABLED") {
            try await world.accounts.twoFactor.disableTwoFactor(
                tenant: tenant, token: enrolled.token, code: "", password: enrolled.password, client: Fixture.client)
        }
        await assertDomainError(.failedPrecondition, "TWO_FACTOR_NOT_ENABLED") {
            try await world.accounts.twoFactor.disableTwoFactor(
                tenant: tenant, token: enrolled.token, code: try totpCode(enrolled.secret, world.clock), password: "",
                client: Fixture.client)
        }
    }

    func testDisableWithCodeAndArgumentRules() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let before = try await world.snapshot()
        for (code, password) in [("", ""), ("123456", enrolled.password)] {
            await assertDomainError(.invalidArgument, "CODE_OR_PASSWORD_REQUIRED") {
                try await world.accounts.twoFactor.disableTwoFactor(
                    tenant: tenant, token: enrolled.token, code: code, password: password, client: Fixture.client)
            }
        }
        try await assertUnchanged(world, since: before)

        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.accounts.twoFactor.disableTwoFactor(
                tenant: tenant, token: enrolled.token, code: try wrongTOTPCode(enrolled.secret, world.clock), password: "",
                client: Fixture.client)
        }
        var credential = try await world.credential(enrolled)
        XCTAssertEqual(credential?.failedAttempts, 1, "a wrong code on disable counts toward the lockout")

        let sequence = world.lastSequence
        let code = try totpCode(enrolled.secret, world.clock)
        try await world.accounts.twoFactor.disableTwoFactor(
            tenant: tenant, token: enrolled.token, code: code, password: "", client: Fixture.client)
        credential = try await world.credential(enrolled)
        XCTAssertNil(credential)
        XCTAssertEqual(
            try world.events(after: sequence).map(\.event),
            [.twoFactorDisabled(userID: enrolled.user.id, email: enrolled.user.email, method: "code")])
        let last = try await world.securityLog(tenant, enrolled.user.id).last
        XCTAssertEqual(last?.detail, "with code")
        let session = try await world.signIn(tenant, enrolled.email, enrolled.password)
        XCTAssertEqual(session.user.id, enrolled.user.id)
    }

    // MARK: Replacing the authenticator

    func testReEnrollingKeepsTheOldAuthenticatorUntilTheNewOneIsConfirmed() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: enrolled.token, password: enrolled.password, client: Fixture.client)
        let newSecret = try World.secretBytes(enrollment)
        var status = try await world.status(enrolled)
        XCTAssertTrue(status.enabled)
        XCTAssertNotNil(status.pendingEnrollmentExpiresAt)

        // The old authenticator and old recovery codes still sign in; the new one does not yet.
        _ = try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
        world.clock.advance(seconds: 30)
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.signInWithCode(enrolled, try totpCode(newSecret, world.clock))
        }
        _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[0])

        // Confirming swaps it.
        let sequence = world.lastSequence
        let (codes, _) = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: enrolled.token, code: try totpCode(newSecret, world.clock), client: Fixture.client)
        XCTAssertEqual(
            try world.events(after: sequence).map(\.event),
            [.twoFactorEnabled(userID: enrolled.user.id, email: enrolled.user.email, replaced: true)])
        let last = try await world.securityLog(tenant, enrolled.user.id).last
        XCTAssertEqual(last?.detail, "authenticator replaced")
        status = try await world.status(enrolled)
        XCTAssertEqual(status.recoveryCodesRemaining, 10)
        XCTAssertNil(status.pendingEnrollmentExpiresAt)

        world.clock.advance(seconds: 30)
        await assertDomainError(.unauthenticated, "TOTP_CODE_INVALID") {
            try await world.signInWithCode(enrolled, try totpCode(enrolled.secret, world.clock))
        }
        await assertDomainError(.unauthenticated, "RECOVERY_CODE_INVALID") {
            try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[1])
        }
        _ = try await world.signInWithCode(enrolled, try totpCode(newSecret, world.clock))
        _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: codes[1])
    }

    // MARK: Password reset, policy, validation

    func testPasswordResetDoesNotBypassTheSecondFactor() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let before = try await world.enableTwoFactor(tenant)
        var reset = before
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: before.email, client: Fixture.client)
        let token = try XCTUnwrap(try world.lastResetToken(email: before.email))
        _ = try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: Fixture.newPassword)
        reset.password = Fixture.newPassword
        let enrolled = reset

        await assertDomainError(.failedPrecondition, "SECOND_FACTOR_REQUIRED") {
            try await world.signIn(tenant, enrolled.email, Fixture.newPassword)
        }
        let challenge = try await world.challenge(enrolled)
        let status = try await world.store.read { try $0.twoFactor(tenant: tenant.id, user: enrolled.user.id) }
        XCTAssertNotNil(status, "a reset leaves 2FA on")
        _ = try await world.complete(enrolled, challenge, code: try totpCode(enrolled.secret, world.clock))
    }

    func testAPasswordResetVoidsAChallengeMadeBeforeIt() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        // Someone who knew the old password holds a challenge.
        let stale = try await world.challenge(enrolled)
        world.clock.advance(seconds: 1)
        try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: enrolled.email, client: Fixture.client)
        let token = try XCTUnwrap(try world.lastResetToken(email: enrolled.email))
        _ = try await world.accounts.passwords.resetPassword(tenant: tenant, token: token, newPassword: Fixture.newPassword)
        await assertDomainError(.unauthenticated, "CHALLENGE_INVALID") {
            try await world.complete(enrolled, stale, code: try totpCode(enrolled.secret, world.clock, offset: 1))
        }
    }

    func testRequireTwoFactorPolicyStillSignsInAndValidateReportsIt() async throws {
        let world = try World()
        let (initial, _) = try await world.makeTenant()
        let tenant = try await world.setPolicy(initial) { $0.requireTwoFactor = true }
        let member = try await world.makeUser(tenant, email: "member@acme.test")
        let session = try await world.signIn(tenant, "member@acme.test", Fixture.memberPassword)
        XCTAssertEqual(session.user.id, member.id)

        let (first, validatedTenant) = try await world.accounts.validate(tenantReference: "acme", token: session.token)
        var validated = first
        XCTAssertTrue(validatedTenant.policy.requireTwoFactor)
        XCTAssertFalse(validated.twoFactorEnabled, "setup required: policy on, 2FA off")

        // Enrolling changes what Validate reports at once (cache invalidated).
        let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: Fixture.memberPassword, client: Fixture.client)
        let secret = try World.secretBytes(enrollment)
        (validated, _) = try await world.accounts.validate(tenantReference: "acme", token: session.token)
        XCTAssertFalse(validated.twoFactorEnabled, "pending is not enabled")
        _ = try await world.accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: session.token, code: try totpCode(secret, world.clock), client: Fixture.client)
        (validated, _) = try await world.accounts.validate(tenantReference: "acme", token: session.token)
        XCTAssertTrue(validated.twoFactorEnabled)
        if case .success(let pair)? = world.accounts.validateCached(tenantReference: "acme", token: session.token) {
            XCTAssertTrue(pair.0.twoFactorEnabled)
        }

        try await world.accounts.twoFactor.disableTwoFactor(
            tenant: tenant, token: session.token, code: "", password: Fixture.memberPassword, client: Fixture.client)
        (validated, _) = try await world.accounts.validate(tenantReference: "acme", token: session.token)
        XCTAssertFalse(validated.twoFactorEnabled)
    }

    // MARK: Secrets at rest

    func testASecretMovedToAnotherUserDoesNotOpen() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let alice = try await world.enableTwoFactor(tenant)
        try await world.makeUser(tenant, email: "bob@acme.test")
        let enrolledBob = try await world.enableTwoFactor(tenant, email: "bob@acme.test", password: Fixture.memberPassword)
        // Copy Alice's sealed secret onto Bob's row.
        try await world.store.write { writer in
            var credential = try XCTUnwrap(try writer.twoFactor(tenant: tenant.id, user: enrolledBob.user.id))
            credential.sealedSecret = try XCTUnwrap(try writer.twoFactor(tenant: tenant.id, user: alice.user.id)).sealedSecret
            try writer.setTwoFactor(credential)
        }
        var moved = enrolledBob
        moved.secret = alice.secret
        let bob = moved
        await assertDomainError(.internal, "SECRET_UNREADABLE") {
            try await world.signInWithCode(bob, try totpCode(alice.secret, world.clock))
        }
    }

    func testAnotherKeyringCannotOpenTheSecrets() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let enrolled = try await world.enableTwoFactor(tenant)
        // The same store under a service with another key (a lost key file).
        let other = AccountService(store: world.store, hasher: world.hasher, clock: world.clock, secrets: .ephemeral())
        let outcome = try await other.signIn.beginSignIn(
            tenant: tenant, email: enrolled.email, password: enrolled.password, client: Fixture.client)
        guard case .secondFactorRequired(let challenge) = outcome else { return XCTFail("expected a challenge") }
        await assertDomainError(.internal, "SECRET_UNREADABLE") {
            try await other.signIn.completeSignIn(
                tenant: tenant, challenge: challenge.token, code: try totpCode(enrolled.secret, world.clock),
                recoveryCode: "", client: Fixture.client)
        }
        // Recovery codes do not depend on the key.
        _ = try await other.signIn.completeSignIn(
            tenant: tenant, challenge: challenge.token, code: "", recoveryCode: enrolled.recoveryCodes[0],
            client: Fixture.client)
    }

    // MARK: Events and logs carry no secrets

    func testNoCodeSecretOrRecoveryCodeInEventsOrSecurityLog() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let start = world.lastSequence
        var typed: [String] = []
        let enrolled = try await world.enableTwoFactor(tenant)
        typed.append(try totpCode(enrolled.secret, world.clock, offset: -1))  // the confirming code

        for attempt in 1...2 {
            let wrong = try wrongTOTPCode(enrolled.secret, world.clock, seed: attempt)
            typed.append(wrong)
            _ = try? await world.signInWithCode(enrolled, wrong)
        }
        let code = try totpCode(enrolled.secret, world.clock)
        typed.append(code)
        _ = try await world.signInWithCode(enrolled, code)
        _ = try? await world.signInWithCode(enrolled, code)  // replay
        _ = try await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[4])
        _ = try? await world.complete(enrolled, try await world.challenge(enrolled), recoveryCode: enrolled.recoveryCodes[4])
        world.clock.advance(seconds: 30)
        let regenerateCode = try totpCode(enrolled.secret, world.clock)
        typed.append(regenerateCode)
        let fresh = try await world.accounts.twoFactor.regenerateRecoveryCodes(
            tenant: tenant, token: enrolled.token, code: regenerateCode, client: Fixture.client)
        world.clock.advance(seconds: 30)
        let verifyCode = try totpCode(enrolled.secret, world.clock)
        typed.append(verifyCode)
        try await world.accounts.twoFactor.verifyTwoFactor(tenant: tenant, token: enrolled.token, code: verifyCode, client: Fixture.client)
        let enrollment = try await world.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: enrolled.token, password: enrolled.password, client: Fixture.client)
        world.clock.advance(seconds: 30)
        let disableCode = try totpCode(enrolled.secret, world.clock)
        typed.append(disableCode)
        try await world.accounts.twoFactor.disableTwoFactor(
            tenant: tenant, token: enrolled.token, code: disableCode, password: "", client: Fixture.client)

        var secrets = typed
        for secret in [enrolled.secret, try World.secretBytes(enrollment)] {
            let base32 = Base32.encode(secret)
            secrets += [base32, base32.lowercased(), Base32.grouped(base32), String(base32.prefix(8))]
            secrets.append(secret.map { String(format: "%02x", $0) }.joined())
        }
        for recovery in enrolled.recoveryCodes + fresh {
            secrets += [recovery, recovery.replacingOccurrences(of: "-", with: ""), recovery.uppercased()]
        }

        let events = try world.events(after: start)
        XCTAssertEqual(
            Set(events.map(\.record.type)),
            [
                "two_factor.enabled", "two_factor.recovery_code_used", "two_factor.recovery_codes_regenerated",
                "two_factor.disabled",
            ])
        for event in events {
            let text = String(decoding: event.record.payload, as: UTF8.self)
            for secret in secrets { XCTAssertFalse(text.contains(secret), "\(event.record.type) carries \(secret): \(text)") }
            for secret in [enrolled.secret, try World.secretBytes(enrollment)] {
                XCTAssertFalse(containsBytes(event.record.payload, secret), "raw secret bytes in \(event.record.type)")
            }
        }
        let log = try await world.securityLog(tenant, enrolled.user.id)
        let kinds = Set(log.map(\.kind))
        for kind: SecurityEventKind in [
            .twoFactorEnrollmentStarted, .twoFactorEnabled, .signInSecondFactorRequired, .twoFactorFailed,
            .twoFactorRecoveryCodeUsed, .twoFactorRecoveryCodesRegenerated, .twoFactorDisabled, .signInSucceeded,
        ] {
            XCTAssertTrue(kinds.contains(kind), "no \(kind) in the security log")
        }
        for entry in log {
            for secret in secrets {
                XCTAssertFalse(entry.detail.contains(secret), "\(entry.kind) detail carries \(secret): \(entry.detail)")
            }
        }
    }
}

/// Whether `haystack` contains `needle` as a contiguous run of bytes.
func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where Array(haystack[start..<(start + needle.count)]) == needle {
        return true
    }
    return false
}
