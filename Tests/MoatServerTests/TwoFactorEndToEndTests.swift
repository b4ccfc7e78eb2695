import Foundation
import MoatClient
import MoatCore
import MoatCrypto
import XCTest

@testable import MoatServer

/// Two-factor over the socket: enrolment, the sign-in challenge, the tenant
/// policy as Validate reports it, and the failure paths a caller sees.
final class TwoFactorEndToEndTests: XCTestCase {
    private let password = "correct horse battery"

    private func code(_ secret: String, offsetSteps: Int64 = 0) throws -> String {
        let totp = try TOTP(secret: Base32.decode(secret.replacingOccurrences(of: " ", with: ""))!)
        return try totp.code(at: Int64(Date().timeIntervalSince1970) + 30 * offsetSteps)
    }

    /// Signs the owner in, enrols and confirms; returns the secret.
    private func enrol(_ moat: AccountsFixture, tenant: String, token: String) async throws
        -> (secret: String, recovery: [String], confirmedWith: String)
    {
        let options = CallOptions(tenant: tenant, authorization: token)
        let enrollment = try await moat.client.twoFactor.beginEnrollment(.with { $0.password = password }, options: options)
        XCTAssertTrue(enrollment.qrSvg.hasPrefix("<svg") || enrollment.qrSvg.hasPrefix("<?xml"), enrollment.qrSvg)
        let matrix = try XCTUnwrap(QRCode(size: Int(enrollment.qrSize), packedRows: Array(enrollment.qrModules)))
        XCTAssertEqual(matrix, try QRCode.encode(enrollment.otpauthUri, level: .medium))
        let code = try self.code(enrollment.secret)
        let confirmed = try await moat.client.twoFactor.confirmEnrollment(.with { $0.code = code }, options: options)
        XCTAssertEqual(confirmed.recoveryCodes.count, 10)
        return (enrollment.secret, confirmed.recoveryCodes, code)
    }

    func testSignInAsksForTheSecondFactorAndValidateReportsIt() async throws {
        let moat = try await AccountsFixture()
        do {
            try await moat.createTenant("acme")
            try await moat.createTenant("other")
            let first = try await moat.signIn("acme", "owner@example.com", password)
            let (secret, recovery, spent) = try await enrol(moat, tenant: "acme", token: first.sessionToken)

            let pending = try await moat.signIn("acme", "owner@example.com", password)
            XCTAssertTrue(pending.secondFactorRequired)
            XCTAssertEqual(pending.sessionToken, "")
            XCTAssertFalse(pending.challenge.isEmpty)
            XCTAssertFalse(pending.hasSession)

            // The challenge of tenant acme means nothing in tenant other.
            await expectRPCError(.unauthenticated, "CHALLENGE_INVALID") {
                _ = try await moat.client.users.completeSignIn(
                    .with {
                        $0.challenge = pending.challenge
                        $0.code = try! self.code(secret, offsetSteps: 1)
                    }, options: CallOptions(tenant: "other"))
            }
            // The code that confirmed the enrolment was spent.
            await expectRPCError(.unauthenticated, "TOTP_CODE_REUSED") {
                _ = try await moat.client.users.completeSignIn(
                    .with {
                        $0.challenge = pending.challenge
                        $0.code = spent
                    }, options: CallOptions(tenant: "acme"))
            }
            let done = try await moat.client.users.completeSignIn(
                .with {
                    $0.challenge = pending.challenge
                    $0.code = try! self.code(secret, offsetSteps: 1)
                }, options: CallOptions(tenant: "acme"))
            XCTAssertTrue(done.session.secondFactorSatisfied)
            let validated = try await moat.client.sessions.validate(
                .with { $0.token = done.sessionToken }, options: CallOptions(tenant: "acme"))
            XCTAssertTrue(validated.secondFactorSatisfied)

            // A recovery code completes a sign-in once.
            let again = try await moat.signIn("acme", "owner@example.com", password)
            _ = try await moat.client.users.completeSignIn(
                .with {
                    $0.challenge = again.challenge
                    $0.recoveryCode = recovery[3]
                }, options: CallOptions(tenant: "acme"))
            let third = try await moat.signIn("acme", "owner@example.com", password)
            await expectRPCError(.unauthenticated, "RECOVERY_CODE_INVALID") {
                _ = try await moat.client.users.completeSignIn(
                    .with {
                        $0.challenge = third.challenge
                        $0.recoveryCode = recovery[3]
                    }, options: CallOptions(tenant: "acme"))
            }
            let status = try await moat.client.twoFactor.status(
                options: CallOptions(tenant: "acme", authorization: done.sessionToken))
            XCTAssertTrue(status.enabled)
            XCTAssertEqual(status.recoveryCodesRemaining, 9)

            let types = try await moat.events().map(\.type)
            XCTAssertTrue(types.contains("two_factor.enabled"))
            XCTAssertTrue(types.contains("two_factor.recovery_code_used"))
        } catch {
            XCTFail("\(error)")
        }
        try await moat.stop()
    }

    func testRequiredByPolicyUntilEnrolled() async throws {
        let moat = try await AccountsFixture()
        do {
            try await moat.createTenant("acme")
            _ = try await moat.client.tenants.updatePolicy(
                .with {
                    $0.tenant = "acme"
                    $0.requireTwoFactor = true
                })
            // Members without 2FA still sign in, but are told to set it up.
            let signedIn = try await moat.signIn("acme", "owner@example.com", password)
            XCTAssertFalse(signedIn.secondFactorRequired)
            XCTAssertTrue(signedIn.session.twoFactorSetupRequired)
            let options = CallOptions(tenant: "acme")
            var validated = try await moat.client.sessions.validate(.with { $0.token = signedIn.sessionToken }, options: options)
            XCTAssertTrue(validated.twoFactorSetupRequired)
            XCTAssertFalse(validated.secondFactorSatisfied)

            _ = try await enrol(moat, tenant: "acme", token: signedIn.sessionToken)
            // The very next Validate sees the enrolment (no stale cache).
            validated = try await moat.client.sessions.validate(.with { $0.token = signedIn.sessionToken }, options: options)
            XCTAssertFalse(validated.twoFactorSetupRequired)
        } catch {
            XCTFail("\(error)")
        }
        try await moat.stop()
    }

    func testFailurePaths() async throws {
        let moat = try await AccountsFixture()
        do {
            try await moat.createTenant("acme")
            let token = try await moat.signIn("acme", "owner@example.com", password).sessionToken
            let options = CallOptions(tenant: "acme", authorization: token)
            await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
                _ = try await moat.client.twoFactor.beginEnrollment(.with { $0.password = "wrong password!" }, options: options)
            }
            await expectRPCError(.failedPrecondition, "ENROLLMENT_NOT_STARTED") {
                _ = try await moat.client.twoFactor.confirmEnrollment(.with { $0.code = "123456" }, options: options)
            }
            await expectRPCError(.failedPrecondition, "TWO_FACTOR_NOT_ENABLED") {
                _ = try await moat.client.twoFactor.disable(.with { $0.code = "123456" }, options: options)
            }
            await expectRPCError(.unauthenticated, "SESSION_INVALID") {
                _ = try await moat.client.twoFactor.status(options: CallOptions(tenant: "acme", authorization: "nope"))
            }
            await expectRPCError(.unauthenticated, "CHALLENGE_INVALID") {
                _ = try await moat.client.users.completeSignIn(
                    .with {
                        $0.challenge = "x"
                        $0.code = "123456"
                    }, options: CallOptions(tenant: "acme"))
            }
            let (secret, _, _) = try await enrol(moat, tenant: "acme", token: token)
            let pending = try await moat.signIn("acme", "owner@example.com", password)
            let wrong = String(format: "%06d", (Int(try code(secret))! + 500_000) % 1_000_000)
            for _ in 0..<4 {
                await expectRPCError(.unauthenticated, "TOTP_CODE_INVALID") {
                    _ = try await moat.client.users.completeSignIn(
                        .with {
                            $0.challenge = pending.challenge
                            $0.code = wrong
                        }, options: CallOptions(tenant: "acme"))
                }
            }
            do {
                _ = try await moat.client.users.completeSignIn(
                    .with {
                        $0.challenge = pending.challenge
                        $0.code = wrong
                    }, options: CallOptions(tenant: "acme"))
                XCTFail("the fifth wrong code must lock")
            } catch let error as RPCError {
                XCTAssertEqual(error.code, .resourceExhausted)
                XCTAssertEqual(error.reason, "TWO_FACTOR_LOCKED")
                XCTAssertEqual(error.details["retry_after_seconds"], "900")
            }
            await expectRPCError(.resourceExhausted, "TWO_FACTOR_LOCKED") {
                _ = try await moat.client.users.completeSignIn(
                    .with {
                        $0.challenge = pending.challenge
                        $0.code = try! self.code(secret, offsetSteps: 1)
                    }, options: CallOptions(tenant: "acme"))
            }
        } catch {
            XCTFail("\(error)")
        }
        try await moat.stop()
    }
}
