import Foundation
import MoatClient
import MoatCore
import Synchronization
import XCTest

@testable import MoatServer

/// Sessions over the socket: every revocation is seen by the next Validate
/// from another connection.
final class SessionsEndToEndTests: XCTestCase {
    private let chrome =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

    /// A second connection, as another service would have.
    private func validator(_ moat: AccountsFixture) -> MoatClient {
        MoatClient(socketPath: moat.daemon.configuration.socketPath)
    }

    private func validate(_ client: MoatClient, _ tenant: String, _ token: String) async throws -> Moat_V1_ValidateResponse {
        try await Self.validate(client, tenant, token)
    }

    private static func validate(_ client: MoatClient, _ tenant: String, _ token: String) async throws
        -> Moat_V1_ValidateResponse
    {
        try await client.sessions.validate(.with { $0.token = token }, options: CallOptions(tenant: tenant))
    }

    private func signIn(_ moat: AccountsFixture, _ userAgent: String? = nil) async throws -> Moat_V1_SignInResponse {
        try await moat.client.users.signIn(
            .with {
                $0.email = "owner@example.com"
                $0.password = "correct horse battery"
                $0.client.userAgent = userAgent ?? chrome
                $0.client.ip = "198.51.100.7"
                $0.client.location = "Lisbon, PT"
            }, options: CallOptions(tenant: "acme"))
    }

    func testValidateReportsTheSession() async throws {
        let moat = try await AccountsFixture()
        let created = try await moat.createTenant("acme")
        let session = try await signIn(moat)
        let other = validator(moat)
        for _ in 0..<3 {  // uncached, then cached: the same answer
            let answer = try await validate(other, "acme", session.sessionToken)
            XCTAssertEqual(answer.sessionID, session.session.id)
            XCTAssertEqual(answer.userID, created.owner.id)
            XCTAssertEqual(answer.tenantID, created.tenant.id)
            XCTAssertEqual(answer.role, .owner)
            XCTAssertEqual(answer.email, "owner@example.com")
            XCTAssertFalse(answer.twoFactorSetupRequired)
            XCTAssertLessThanOrEqual(answer.expiresAtUnix, answer.absoluteExpiresAtUnix)
        }
        // Policy requiring 2FA shows at once.
        _ = try await moat.client.tenants.updatePolicy(
            .with {
                $0.tenant = "acme"
                $0.requireTwoFactor = true
            })
        let after = try await validate(other, "acme", session.sessionToken)
        XCTAssertTrue(after.twoFactorSetupRequired)
        await other.close()
        try await moat.stop()
    }

    func testEveryRevocationPathIsSeenByTheNextValidateElsewhere() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        let other = validator(moat)
        let acme = CallOptions(tenant: "acme")

        typealias Revocation = (name: String, revoke: (_ victim: String, _ keeper: String) async throws -> Void)
        let paths: [Revocation] = [
            ("Sessions.SignOut", { victim, _ in
                _ = try await moat.client.sessions.signOut(options: CallOptions(tenant: "acme", authorization: victim))
            }),
            ("Users.SignOut", { victim, _ in
                _ = try await moat.client.users.signOut(options: CallOptions(tenant: "acme", authorization: victim))
            }),
            ("Sessions.Revoke", { victim, keeper in
                let id = try await self.validate(other, "acme", victim).sessionID
                _ = try await moat.client.sessions.revoke(
                    .with { $0.sessionID = id }, options: CallOptions(tenant: "acme", authorization: keeper))
            }),
            ("Sessions.RevokeOthers", { _, keeper in
                _ = try await moat.client.sessions.revokeOthers(options: CallOptions(tenant: "acme", authorization: keeper))
            }),
            ("Users.ChangePassword(revoke others)", { _, keeper in
                _ = try await moat.client.users.changePassword(
                    .with {
                        $0.currentPassword = "correct horse battery"
                        $0.newPassword = "correct horse battery 2"
                        $0.revokeOtherSessions = true
                    }, options: CallOptions(tenant: "acme", authorization: keeper))
                _ = try await moat.client.users.changePassword(
                    .with {
                        $0.currentPassword = "correct horse battery 2"
                        $0.newPassword = "correct horse battery"
                    }, options: CallOptions(tenant: "acme", authorization: keeper))
            }),
        ]
        for path in paths {
            let victim = try await signIn(moat).sessionToken
            let keeper = try await signIn(moat).sessionToken
            // Cached on the validator's side first.
            _ = try await validate(other, "acme", victim)
            _ = try await validate(other, "acme", victim)
            try await path.revoke(victim, keeper)
            await expectRPCError(.unauthenticated, "SESSION_INVALID") {
                _ = try await self.validate(other, "acme", victim)
            }
            let kept = try await validate(other, "acme", keeper)
            XCTAssertFalse(kept.sessionID.isEmpty, path.name)
            _ = try await moat.client.sessions.revokeOthers(options: CallOptions(tenant: "acme", authorization: keeper))
            _ = try await moat.client.sessions.signOut(options: CallOptions(tenant: "acme", authorization: keeper))
        }

        // RevokeAllForUser (administrator caller) and user disable/reset end
        // every session of the user.
        let member = try await moat.client.users.create(
            .with {
                $0.email = "m@example.com"
                $0.password = "member password 1"
            }, options: acme)
        func memberSession() async throws -> String {
            let request = Moat_V1_SignInRequest.with {
                $0.email = "m@example.com"
                $0.password = "member password 1"
            }
            let response = try await moat.client.users.signIn(request, options: acme)
            return response.sessionToken
        }
        var token = try await memberSession()
        _ = try await validate(other, "acme", token)
        let revoked = try await moat.client.sessions.revokeAllForUser(.with { $0.userID = member.id }, options: acme)
        XCTAssertEqual(revoked.revoked, 1)
        await expectRPCError(.unauthenticated, "SESSION_INVALID") { _ = try await self.validate(other, "acme", token) }

        token = try await memberSession()
        _ = try await validate(other, "acme", token)
        _ = try await moat.client.users.requestPasswordReset(.with { $0.email = "m@example.com" }, options: acme)
        let events = try await moat.events()
        let resetToken = try Moat_V1_PasswordResetRequested(
            serializedBytes: XCTUnwrap(events.last { $0.type == "password_reset.requested" }).payload
        ).token
        _ = try await moat.client.users.resetPassword(
            .with {
                $0.token = resetToken
                $0.newPassword = "member password 2"
            }, options: acme)
        await expectRPCError(.unauthenticated, "SESSION_INVALID") { _ = try await self.validate(other, "acme", token) }

        token = try await moat.client.users.signIn(
            .with {
                $0.email = "m@example.com"
                $0.password = "member password 2"
            }, options: acme
        ).sessionToken
        _ = try await validate(other, "acme", token)
        _ = try await moat.client.users.disable(.with { $0.userID = member.id }, options: acme)
        await expectRPCError(.unauthenticated, "SESSION_INVALID") { _ = try await self.validate(other, "acme", token) }

        let sessionRevokedEvents = try await moat.events().filter { $0.type == "session.revoked" }
        XCTAssertGreaterThanOrEqual(sessionRevokedEvents.count, 8)
        await other.close()
        try await moat.stop()
    }

    func testNoValidateSucceedsAfterTheRevokeReturned() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        for round in 0..<5 {
            let victim = try await signIn(moat).sessionToken
            let clients = (0..<8).map { _ in validator(moat) }
            let probe = RaceProbe()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in clients {
                    group.addTask {
                        while !probe.stop.load(ordering: .acquiring) {
                            let started = ContinuousClock.now
                            let succeeded = (try? await Self.validate(client, "acme", victim)) != nil
                            let revoked = probe.revokedAt.withLock({ $0 })
                            if let revoked, started > revoked { probe.lateAttempts.add(1, ordering: .relaxed) }
                            guard succeeded else { continue }
                            if let revoked, started > revoked {
                                probe.lateSuccesses.add(1, ordering: .relaxed)
                            } else {
                                probe.earlySuccesses.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
                // Counts, not time, order the phases: enough validations
                // before the revoke, then enough started after it.
                await probe.until { $0.earlySuccesses.load(ordering: .relaxed) > 16 }
                _ = try await moat.client.sessions.signOut(options: CallOptions(tenant: "acme", authorization: victim))
                probe.revokedAt.withLock { $0 = ContinuousClock.now }
                await probe.until { $0.lateAttempts.load(ordering: .relaxed) >= 3 * clients.count }
                probe.stop.store(true, ordering: .releasing)
                try await group.waitForAll()
            }
            XCTAssertEqual(probe.lateSuccesses.load(ordering: .relaxed), 0, "round \(round)")
            XCTAssertGreaterThan(probe.earlySuccesses.load(ordering: .relaxed), 8, "the loop validated before the revoke")
            for client in clients { await client.close() }
        }
        try await moat.stop()
    }

    func testListShowsDevicesNewestActivityFirstAndLastActiveBeforeFlush() async throws {
        let clock = SteppedWallClock()
        let moat = try await AccountsFixture(clock: clock)
        try await moat.createTenant("acme")
        let phone = try await signIn(
            moat,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
        )
        clock.advance(seconds: 2)
        let desktop = try await signIn(moat)
        // Activity on the phone after the desktop signed in; not flushed yet.
        clock.advance(seconds: 2)
        _ = try await validate(moat.client, "acme", phone.sessionToken)
        let list = try await moat.client.sessions.list(
            options: CallOptions(tenant: "acme", authorization: desktop.sessionToken))
        // Listing is activity of the calling device: it comes first, "active
        // now"; the phone's unflushed activity shows too.
        XCTAssertEqual(list.sessions.map(\.id), [desktop.session.id, phone.session.id])
        XCTAssertTrue(list.sessions[0].current)
        XCTAssertEqual(list.sessions[0].deviceType, "desktop")
        XCTAssertEqual(list.sessions[0].browser, "Chrome 131")
        XCTAssertFalse(list.sessions[1].current)
        XCTAssertEqual(list.sessions[1].deviceType, "mobile")
        XCTAssertEqual(list.sessions[1].os, "iOS 17.4")
        XCTAssertEqual(list.sessions[1].browser, "Safari 17")
        XCTAssertEqual(list.sessions[1].location, "Lisbon, PT")
        XCTAssertGreaterThan(list.sessions[1].lastActiveAtUnix, phone.session.lastActiveAtUnix, "unflushed activity shown")
        XCTAssertGreaterThan(list.sessions[1].lastActiveAtUnix, desktop.session.createdAtUnix - 1)

        // After a flush the store has it too.
        try await moat.daemon.accounts.sessions.flushLastActive()
        let stored = try await moat.daemon.store.read { reader in
            try reader.session(tenant: TenantID(unchecked: phone.user.tenantID), id: SessionID(unchecked: phone.session.id))
        }
        XCTAssertEqual(stored?.lastActiveAt.seconds, list.sessions[1].lastActiveAtUnix)
        try await moat.stop()
    }

    func testCrossTenantAndCrossUserAreRefused() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        try await moat.createTenant("other", owner: "o@example.com")
        let mine = try await signIn(moat)
        let theirs = try await moat.signIn("other", "o@example.com", "correct horse battery")
        let other = validator(moat)
        _ = try await validate(other, "acme", mine.sessionToken)  // cached in acme
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await self.validate(other, "other", mine.sessionToken)
        }
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await self.validate(other, "acme", theirs.sessionToken)
        }
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await self.validate(other, "acme", "not-a-token")
        }
        // Another user's session id: NOT_FOUND, and it still works.
        let member = try await moat.client.users.create(
            .with {
                $0.email = "m@example.com"
                $0.password = "member password 1"
            }, options: CallOptions(tenant: "acme"))
        let memberSession = try await moat.signIn("acme", member.email, "member password 1")
        await expectRPCError(.notFound, "SESSION_NOT_FOUND") {
            _ = try await moat.client.sessions.revoke(
                .with { $0.sessionID = mine.session.id },
                options: CallOptions(tenant: "acme", authorization: memberSession.sessionToken))
        }
        _ = try await validate(other, "acme", mine.sessionToken)
        // A member may not revoke all of someone's sessions.
        await expectRPCError(.permissionDenied, "ROLE_REQUIRED") {
            _ = try await moat.client.sessions.revokeAllForUser(
                .with { $0.userID = mine.user.id },
                options: CallOptions(tenant: "acme", authorization: memberSession.sessionToken))
        }
        await other.close()
        try await moat.stop()
    }
}

/// Shared state of the revoke-while-validating race.
final class RaceProbe: Sendable {
    let revokedAt = Mutex<ContinuousClock.Instant?>(nil)
    let lateSuccesses = Atomic<Int>(0)
    let earlySuccesses = Atomic<Int>(0)
    /// Validations (of any outcome) started after the revoke returned.
    let lateAttempts = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)

    /// Yields until `condition` holds (the validating tasks make progress
    /// meanwhile); gives up after 30 s so a broken daemon fails the
    /// assertions instead of hanging.
    func until(_ condition: (RaceProbe) -> Bool) async {
        let giveUp = ContinuousClock.now + .seconds(30)
        while !condition(self), ContinuousClock.now < giveUp { await Task.yield() }
    }
}
