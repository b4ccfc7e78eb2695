import Foundation
import Logging
import MoatClient
import MoatCore
import MoatCrypto
import Synchronization
import XCTest

@testable import MoatServer

/// A wall clock that starts at the real time and then moves only when a
/// test moves it, for end-to-end checks of times the daemon records.
final class SteppedWallClock: WallClock {
    private let current = Mutex(SystemWallClock().now())

    func now() -> Timestamp { current.withLock { $0 } }

    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
}

/// A daemon with cheap hashing on a temporary directory, and a client.
final class AccountsFixture: @unchecked Sendable {
    let directory: String
    let daemon: MoatDaemon
    let client: MoatClient
    private let task: Task<Void, Error>

    /// - Parameter clock: The daemon's wall clock (`MoatDaemon.open`'s).
    init(clock: any WallClock = SystemWallClock()) async throws {
        directory = NSTemporaryDirectory() + "moat-e2e-" + UUID().uuidString.prefix(8)
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        configuration.hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        // Tests watch activity second by second.
        configuration.sessions.lastActiveGranularitySeconds = 1
        daemon = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"), clock: clock)
        try await daemon.server.start()
        let daemon = self.daemon
        task = Task { try await daemon.run() }
        client = MoatClient(socketPath: daemon.configuration.socketPath)
    }

    func stop() async throws {
        await client.close()
        await daemon.shutdown()
        try await task.value
        try? FileManager.default.removeItem(atPath: directory)
    }

    func events() async throws -> [EventRecord] {
        try await daemon.store.read { try $0.events(after: 0, limit: 10_000) }
    }

    @discardableResult
    func createTenant(_ slug: String, owner: String = "owner@example.com", password: String = "correct horse battery")
        async throws -> Moat_V1_CreateTenantResponse
    {
        try await client.tenants.create(
            .with {
                $0.slug = slug
                $0.name = "Tenant \(slug)"
                $0.ownerEmail = owner
                $0.ownerPassword = password
            })
    }

    func signIn(_ tenant: String, _ email: String, _ password: String) async throws -> Moat_V1_SignInResponse {
        try await client.users.signIn(
            .with {
                $0.email = email
                $0.password = password
                $0.client.userAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
                $0.client.ip = "203.0.113.9"
                $0.client.location = "Berlin, DE"
            }, options: CallOptions(tenant: tenant))
    }
}

func expectRPCError(
    _ code: Code, _ reason: String? = nil, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        XCTFail("expected \(code)", file: file, line: line)
    } catch let error as RPCError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        if let reason { XCTAssertEqual(error.reason, reason, "\(error)", file: file, line: line) }
    } catch {
        XCTFail("unexpected \(error)", file: file, line: line)
    }
}

final class AccountsEndToEndTests: XCTestCase {
    func testTenantSignInChangePasswordAndResetThroughTheOutbox() async throws {
        let moat = try await AccountsFixture()
        let created = try await moat.createTenant("acme", owner: "  Owner@Example.COM ")
        XCTAssertEqual(created.owner.email, "owner@example.com")
        XCTAssertEqual(created.owner.role, .owner)
        XCTAssertTrue(created.tenant.id.hasPrefix("tn_"))

        // Sign in (by slug), then change the password with the session.
        let first = try await moat.signIn("acme", "owner@example.com", "correct horse battery")
        XCTAssertFalse(first.sessionToken.isEmpty)
        XCTAssertEqual(first.session.browser, "Firefox 132")
        let second = try await moat.signIn(created.tenant.id, "OWNER@example.com", "correct horse battery")
        let changed = try await moat.client.users.changePassword(
            .with {
                $0.currentPassword = "correct horse battery"
                $0.newPassword = "a much better passphrase"
                $0.revokeOtherSessions = true
            }, options: CallOptions(tenant: "acme", authorization: first.sessionToken))
        XCTAssertEqual(changed.revokedSessions, 1)
        await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
            _ = try await moat.signIn("acme", "owner@example.com", "correct horse battery")
        }
        // The other session is gone, the current one lives.
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.signOut(options: CallOptions(tenant: "acme", authorization: second.sessionToken))
        }
        let events = try await moat.events()
        let passwordChanged = try XCTUnwrap(events.first { $0.type == "password.changed" })
        let payload = try Moat_V1_PasswordChanged(serializedBytes: passwordChanged.payload)
        XCTAssertEqual(payload.email, "owner@example.com")
        XCTAssertEqual(payload.revokedSessions, 1)

        // Reset: the token arrives in the outbox, never in the response.
        _ = try await moat.client.users.requestPasswordReset(
            .with { $0.email = "owner@example.com" }, options: CallOptions(tenant: "acme"))
        let allEvents = try await moat.events()
        let resetEvent = try XCTUnwrap(allEvents.last { $0.type == "password_reset.requested" })
        let token = try Moat_V1_PasswordResetRequested(serializedBytes: resetEvent.payload).token
        XCTAssertGreaterThan(token.count, 40)
        let reset = try await moat.client.users.resetPassword(
            .with {
                $0.token = token
                $0.newPassword = "reset to something new"
            }, options: CallOptions(tenant: "acme"))
        XCTAssertEqual(reset.revokedSessions, 1, "the session that changed the password is revoked too")
        await expectRPCError(.unauthenticated, "RESET_TOKEN_INVALID") {
            _ = try await moat.client.users.resetPassword(
                .with {
                    $0.token = token
                    $0.newPassword = "and once more again"
                }, options: CallOptions(tenant: "acme"))
        }
        _ = try await moat.signIn("acme", "owner@example.com", "reset to something new")
        try await moat.stop()
    }

    func testCrossTenantIdsEmailsAndTokensChangeNothing() async throws {
        let moat = try await AccountsFixture()
        let a = try await moat.createTenant("tenant-a", owner: "a@example.com")
        _ = try await moat.createTenant("tenant-b", owner: "b@example.com")
        let sessionA = try await moat.signIn("tenant-a", "a@example.com", "correct horse battery")
        let before = try await moat.events().count
        let inB = CallOptions(tenant: "tenant-b")

        await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
            _ = try await moat.signIn("tenant-b", "a@example.com", "correct horse battery")
        }
        await expectRPCError(.notFound, "USER_NOT_FOUND") {
            _ = try await moat.client.users.get(.with { $0.userID = a.owner.id }, options: inB)
        }
        await expectRPCError(.notFound, "USER_NOT_FOUND") {
            _ = try await moat.client.users.disable(.with { $0.userID = a.owner.id }, options: inB)
        }
        var withToken = inB
        withToken.authorization = sessionA.sessionToken
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.signOut(options: withToken)
        }
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.changePassword(
                .with {
                    $0.currentPassword = "correct horse battery"
                    $0.newPassword = "something else entirely"
                }, options: withToken)
        }
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.list(.init(), options: withToken)
        }
        // Reset token of A used in B.
        _ = try await moat.client.users.requestPasswordReset(
            .with { $0.email = "a@example.com" }, options: CallOptions(tenant: "tenant-a"))
        let allEvents = try await moat.events()
        let resetEvent = try XCTUnwrap(allEvents.last { $0.type == "password_reset.requested" })
        let token = try Moat_V1_PasswordResetRequested(serializedBytes: resetEvent.payload).token
        await expectRPCError(.unauthenticated, "RESET_TOKEN_INVALID") {
            _ = try await moat.client.users.resetPassword(
                .with {
                    $0.token = token
                    $0.newPassword = "stolen token password"
                }, options: inB)
        }
        // Nothing written by any of the refused calls (only the reset request).
        let after = try await moat.events()
        XCTAssertEqual(after.count, before + 1)
        XCTAssertEqual(after.last?.type, "password_reset.requested")
        // The session of A still works in A.
        _ = try await moat.client.users.signOut(
            options: CallOptions(tenant: "tenant-a", authorization: sessionA.sessionToken))
        try await moat.stop()
    }

    func testBadInputGetsReasonsAndWritesNothing() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        let before = try await moat.events().count
        let acme = CallOptions(tenant: "acme")

        for email in ["", String(repeating: "a", count: 10_000) + "@example.com", "not-an-email"] {
            await expectRPCError(.invalidArgument, "EMAIL_INVALID") {
                _ = try await moat.client.users.create(
                    .with {
                        $0.email = email
                        $0.password = "long enough password"
                    }, options: acme)
            }
        }
        await expectRPCError(.invalidArgument, "PASSWORD_TOO_SHORT") {
            _ = try await moat.client.users.create(
                .with {
                    $0.email = "new@example.com"
                    $0.password = "1234567"
                }, options: acme)
        }
        await expectRPCError(.invalidArgument, "PASSWORD_TOO_LONG") {
            _ = try await moat.client.users.create(
                .with {
                    $0.email = "new@example.com"
                    $0.password = String(repeating: "x", count: 1025)
                }, options: acme)
        }
        await expectRPCError(.invalidArgument, "PASSWORD_TOO_COMMON") {
            _ = try await moat.client.users.create(
                .with {
                    $0.email = "new@example.com"
                    $0.password = "Password123"
                }, options: acme)
        }
        await expectRPCError(.notFound, "TENANT_NOT_FOUND") {
            _ = try await moat.signIn("no-such-tenant", "owner@example.com", "correct horse battery")
        }
        await expectRPCError(.invalidArgument, "TENANT_REQUIRED") {
            _ = try await moat.signIn("", "owner@example.com", "correct horse battery")
        }
        // Invalid UTF-8 inside a string field of the payload.
        let raw = Data([0x0A, 0x03, 0xFF, 0xFE, 0xFD, 0x12, 0x01, 0x61])  // email = <bad>, password = "a"
        await expectRPCError(.invalidArgument, "INVALID_PAYLOAD") {
            _ = try await moat.client.call(Moat_V1_Users.Method.signIn, payload: raw, options: acme)
        }
        await expectRPCError(.invalidArgument, "SLUG_INVALID") {
            try await moat.createTenant("Bad Slug!")
        }
        await expectRPCError(.alreadyExists, "SLUG_TAKEN") {
            try await moat.createTenant("acme", owner: "other@example.com")
        }
        let after = try await moat.events().count
        XCTAssertEqual(after, before, "nothing was written")
        try await moat.stop()
    }

    func testLockoutOverTheWireCarriesRetryAfter() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        for _ in 1...5 {
            await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
                _ = try await moat.signIn("acme", "owner@example.com", "wrong password here")
            }
        }
        do {
            _ = try await moat.signIn("acme", "owner@example.com", "correct horse battery")
            XCTFail("signed in while locked")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .resourceExhausted)
            XCTAssertEqual(error.reason, "SIGN_IN_LOCKED")
            XCTAssertEqual(error.details["retry_after_seconds"].flatMap(Int.init).map { (1...60).contains($0) }, true)
        }
        try await moat.stop()
    }

    func testTenantsAreAdminOnlyAndUsersNeedASessionOrAdmin() async throws {
        let moat = try await AccountsFixture()
        let created = try await moat.createTenant("acme")
        let owner = try await moat.signIn("acme", "owner@example.com", "correct horse battery")
        let member = try await moat.client.users.create(
            .with {
                $0.email = "member@example.com"
                $0.password = "member password 1"
            }, options: CallOptions(tenant: "acme", authorization: owner.sessionToken))
        XCTAssertEqual(member.role, .member)
        let memberSession = try await moat.signIn("acme", "member@example.com", "member password 1")
        await expectRPCError(.permissionDenied, "ROLE_REQUIRED") {
            _ = try await moat.client.users.list(
                .init(), options: CallOptions(tenant: "acme", authorization: memberSession.sessionToken))
        }
        // A member may read themself, not the owner.
        let me = try await moat.client.users.get(
            .with { $0.userID = member.id }, options: CallOptions(tenant: "acme", authorization: memberSession.sessionToken))
        XCTAssertEqual(me.email, "member@example.com")
        await expectRPCError(.permissionDenied) {
            _ = try await moat.client.users.get(
                .with { $0.userID = created.owner.id },
                options: CallOptions(tenant: "acme", authorization: memberSession.sessionToken))
        }
        // Disabling revokes the member's sessions.
        let disabled = try await moat.client.users.disable(
            .with { $0.userID = member.id }, options: CallOptions(tenant: "acme", authorization: owner.sessionToken))
        XCTAssertEqual(disabled.status, .disabled)
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.signOut(
                options: CallOptions(tenant: "acme", authorization: memberSession.sessionToken))
        }
        await expectRPCError(.failedPrecondition, "ACCOUNT_DISABLED") {
            _ = try await moat.signIn("acme", "member@example.com", "member password 1")
        }
        let page = try await moat.client.tenants.list(.init())
        XCTAssertEqual(page.tenants.map(\.slug), ["acme"])
        try await moat.stop()
    }
}
