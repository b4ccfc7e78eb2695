import MoatCrypto
import XCTest

@testable import MoatCore

/// Signing in and out: email normalization, one answer for every failure,
/// rehashing, the security log, sign-out, the session cap.
final class SignInTests: XCTestCase {
    func testSignInNormalizesEmailAndCreatesSession() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let now = world.clock.now()
        let result = try await world.signIn(tenant, "  OWNER@Acme.TEST\n", Fixture.ownerPassword)
        XCTAssertEqual(result.user.id, owner.id)
        XCTAssertEqual(result.session.userID, owner.id)
        XCTAssertEqual(result.session.tenantID, tenant.id)
        XCTAssertEqual(result.session.client, Fixture.client)
        XCTAssertEqual(result.session.createdAt, now)
        XCTAssertFalse(result.session.secondFactorSatisfied)
        XCTAssertTrue(SessionID.isWellFormed(result.session.id.rawValue))
        // 256 random bits, base64url: 43 characters.
        XCTAssertEqual(result.token.count, 43)
        XCTAssertEqual(result.session.tokenHash, OpaqueToken.hash(result.token))
        XCTAssertNotEqual(result.session.tokenHash, Array(result.token.utf8))

        let (session, user) = try await world.accounts.authenticate(tenant: tenant.id, token: result.token)
        XCTAssertEqual(session.id, result.session.id)
        XCTAssertEqual(user.id, owner.id)
        let actor = try await world.actor(tenant, token: result.token)
        XCTAssertEqual(actor.userID, owner.id)

        // A second sign-in is a second session with another token.
        let second = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        XCTAssertNotEqual(second.token, result.token)
        XCTAssertNotEqual(second.session.id, result.session.id)
        let live = try await world.liveSessions(tenant, owner.id)
        XCTAssertEqual(live.count, 2)
    }

    func testUnknownEmailAndWrongPasswordGetTheSameAnswer() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let before = try await world.snapshot()
        let unknown = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, "ghost@acme.test", Fixture.ownerPassword)
        }
        // Nothing is written for an address without an account.
        try await assertUnchanged(world, since: before)

        let wrong = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword + "x")
        }
        XCTAssertNotNil(unknown)
        XCTAssertEqual(unknown, wrong, "same kind, reason, message and details")
        let empty = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Fixture.ownerEmail, "")
        }
        XCTAssertEqual(empty, wrong)

        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 2)
        XCTAssertNil(stored?.lockedUntil)
        let live = try await world.liveSessions(tenant, owner.id)
        XCTAssertTrue(live.isEmpty)
    }

    func testOverlongPasswordIsRefusedAlikeForKnownAndUnknownEmails() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let before = try await world.snapshot()
        let huge = String(repeating: "x", count: 4097)
        let known = await assertDomainError(.invalidArgument, "PASSWORD_TOO_LONG") {
            try await world.signIn(tenant, Fixture.ownerEmail, huge)
        }
        let unknown = await assertDomainError(.invalidArgument, "PASSWORD_TOO_LONG") {
            try await world.signIn(tenant, "ghost@acme.test", huge)
        }
        XCTAssertEqual(known, unknown)
        try await assertUnchanged(world, since: before)
    }

    func testSecurityLogRecordsSuccessAndFailureWithClient() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let failedAt = world.clock.now()
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Fixture.ownerEmail, "not-the-password", client: Fixture.otherClient)
        }
        world.clock.advance(seconds: 5)
        let result = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let log = try await world.securityLog(tenant, owner.id)
        XCTAssertEqual(log.map(\.kind), [.signInFailed, .signInSucceeded])
        XCTAssertEqual(log.map(\.ip), [Fixture.otherClient.ip, Fixture.client.ip])
        XCTAssertEqual(log.map(\.userAgent), [Fixture.otherClient.userAgent, Fixture.client.userAgent])
        XCTAssertEqual(log.map(\.createdAt), [failedAt, failedAt.adding(seconds: 5)])
        XCTAssertEqual(log.map(\.tenantID), [tenant.id, tenant.id])
        XCTAssertEqual(log.last?.detail, "session \(result.session.id)")
        for entry in log {
            XCTAssertFalse(entry.detail.contains(Fixture.ownerPassword))
            XCTAssertFalse(entry.detail.contains("not-the-password"))
            XCTAssertFalse(entry.detail.contains(result.token))
        }
    }

    func testClientDetailsAreBoundedAndCleaned() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let client = ClientDetails(
            userAgent: "Agent\u{0}\n" + String(repeating: "a", count: 2000), ip: "203.0.113.9\r\n" + String(repeating: "1", count: 100),
            location: String(repeating: "l", count: 500), deviceName: String(repeating: "d", count: 500))
        let result = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword, client: client)
        XCTAssertEqual(result.session.client.userAgent.count, 512)
        XCTAssertTrue(result.session.client.userAgent.hasPrefix("Agentaaa"))
        XCTAssertEqual(result.session.client.ip.count, 64)
        XCTAssertTrue(result.session.client.ip.hasPrefix("203.0.113.91111"))
        XCTAssertEqual(result.session.client.location.count, 128)
        XCTAssertEqual(result.session.client.deviceName.count, 128)
        let entry = try await world.securityLog(tenant, owner.id).last
        XCTAssertEqual(entry?.userAgent, result.session.client.userAgent)
        XCTAssertEqual(entry?.ip, result.session.client.ip)
    }

    func testChangedArgon2ParametersRehashOnSuccessfulSignIn() async throws {
        let old = try World(parameters: .cheap)
        let (tenant, owner) = try await old.makeTenant()
        let oldHash = try await old.storedUser(tenant, owner.id)?.passwordHash
        XCTAssertEqual(oldHash.flatMap { $0.split(separator: "$").dropFirst(2).first }, "m=64,t=1,p=1")

        let stronger = Argon2Parameters(memoryKiB: 128, iterations: 2, parallelism: 1)
        let new = try World(parameters: stronger, store: old.store, clock: old.clock)

        // A failed sign-in does not rehash.
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await new.signIn(tenant, Fixture.ownerEmail, "wrong-password-123")
        }
        let afterFailure = try await new.storedUser(tenant, owner.id)?.passwordHash
        XCTAssertEqual(afterFailure, oldHash)

        let result = try await new.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let storedHash = try await new.storedUser(tenant, owner.id)?.passwordHash
        let rehashed = try XCTUnwrap(storedHash)
        XCTAssertEqual(result.user.passwordHash, rehashed)
        XCTAssertNotEqual(rehashed, oldHash)
        XCTAssertEqual(rehashed.split(separator: "$").dropFirst(2).first, "m=128,t=2,p=1")
        XCTAssertFalse(new.hasher.needsRehash(rehashed))
        XCTAssertTrue(Argon2id.verify(password: Array(Fixture.ownerPassword.utf8), phc: rehashed))

        // Signing in again keeps the (now current) hash.
        _ = try await new.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let kept = try await new.storedUser(tenant, owner.id)?.passwordHash
        XCTAssertEqual(kept, rehashed)
    }

    func testUnchangedParametersKeepTheHash() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let before = try await world.storedUser(tenant, owner.id)?.passwordHash
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let after = try await world.storedUser(tenant, owner.id)?.passwordHash
        XCTAssertEqual(before, after)
    }

    // MARK: Sign-out

    func testSignOutRevokesOnlyThatSession() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let first = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        let second = try await world.signIn(
            tenant, Fixture.ownerEmail, Fixture.ownerPassword, client: Fixture.otherClient)
        let sequence = world.lastSequence

        try await world.accounts.signIn.signOut(tenant: tenant, token: first.token)
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.authenticate(tenant: tenant.id, token: first.token)
        }
        _ = try await world.accounts.authenticate(tenant: tenant.id, token: second.token)
        XCTAssertEqual(
            try world.events(after: sequence).map(\.event),
            [.sessionRevoked(sessionID: first.session.id, userID: owner.id, reason: "sign_out")])
        let log = try await world.securityLog(tenant, owner.id)
        XCTAssertEqual(log.last?.kind, .signedOut)
        XCTAssertEqual(log.last?.ip, Fixture.client.ip)

        // Signing out twice, or with garbage, is SESSION_INVALID and writes nothing.
        let before = try await world.snapshot()
        for token in [first.token, "", "garbage", String(repeating: "t", count: 10_000)] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.signIn.signOut(tenant: tenant, token: token)
            }
        }
        try await assertUnchanged(world, since: before)
    }

    func testAuthenticateRefusesGarbage() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let token = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword).token
        for garbage in ["", "x", token + "x", String(token.dropLast()), String(repeating: "a", count: 10_000)] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.authenticate(tenant: tenant.id, token: garbage)
            }
        }
        // No token and not an administrator: UNAUTHENTICATED too.
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.actor(tenant: tenant.id, token: "", callerIsAdministrator: false)
        }
        let administrator = try await world.accounts.actor(tenant: tenant.id, token: "", callerIsAdministrator: true)
        XCTAssertNil(administrator.userID)
        XCTAssertTrue(administrator.managesUsers)
        // A token wins over the administrator flag: a bad one is refused.
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.actor(tenant: tenant.id, token: "bad", callerIsAdministrator: true)
        }
    }

    // MARK: Session cap

    func testSessionCapRevokesTheOldest() async throws {
        let world = try World()
        let (initial, owner) = try await world.makeTenant()
        let tenant = try await world.setPolicy(initial) { $0.maxSessionsPerUser = 2 }
        var results: [SignInResult] = []
        for _ in 0..<2 {
            results.append(try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword))
            world.clock.advance(seconds: 1)
        }
        let sequence = world.lastSequence
        results.append(try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword))

        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.authenticate(tenant: tenant.id, token: results[0].token)
        }
        _ = try await world.accounts.authenticate(tenant: tenant.id, token: results[1].token)
        _ = try await world.accounts.authenticate(tenant: tenant.id, token: results[2].token)
        XCTAssertEqual(
            try world.events(after: sequence).map(\.event),
            [.sessionRevoked(sessionID: results[0].session.id, userID: owner.id, reason: "session_cap")])

        world.clock.advance(seconds: 1)
        results.append(try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword))
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.authenticate(tenant: tenant.id, token: results[1].token)
        }
        let live = try await world.liveSessions(tenant, owner.id)
        XCTAssertEqual(Set(live.map(\.id)), [results[2].session.id, results[3].session.id])
    }

    func testNoCapByDefault() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        for _ in 0..<12 { _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword) }
        let live = try await world.liveSessions(tenant, owner.id)
        XCTAssertEqual(live.count, 12)
    }

    /// Sign-ins within the same millisecond (concurrent devices) must still
    /// respect the cap and keep the new session.
    func testSessionCapHoldsForSignInsAtTheSameInstant() async throws {
        let world = try World()
        let (initial, owner) = try await world.makeTenant()
        let tenant = try await world.setPolicy(initial) { $0.maxSessionsPerUser = 1 }
        for attempt in 1...8 {
            let result = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
            let live = try await world.liveSessions(tenant, owner.id)
            XCTAssertEqual(live.count, 1, "sign-in \(attempt): \(live.count) live sessions with a cap of 1")
            XCTAssertTrue(live.contains { $0.id == result.session.id }, "sign-in \(attempt): the new session is live")
        }
    }
}
