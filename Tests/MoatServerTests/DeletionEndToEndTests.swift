import Foundation
import MoatClient
import MoatCore
import XCTest

@testable import MoatServer

/// The error a call throws, as the client sees it.
private func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        XCTFail("unexpected \(error)")
        return nil
    }
}

final class DeletionEndToEndTests: XCTestCase {
    private let password = "correct horse battery"
    private let memberPassword = "member password 1"

    func testAccountDeletionSignInRefusedRestoreAndSignInAgain() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        let owner = try await moat.signIn("acme", "owner@example.com", password)
        _ = try await moat.client.users.create(
            .with {
                $0.email = "member@example.com"
                $0.password = memberPassword
            }, options: CallOptions(tenant: "acme", authorization: owner.sessionToken))
        let member = try await moat.signIn("acme", "member@example.com", memberPassword)
        let session = CallOptions(tenant: "acme", authorization: member.sessionToken)

        await expectRPCError(.invalidArgument, "CONFIRMATION_REQUIRED") {
            _ = try await moat.client.users.requestDeletion(
                .with {
                    $0.confirmation = "delete"
                    $0.password = self.memberPassword
                }, options: session)
        }
        await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
            _ = try await moat.client.users.requestDeletion(
                .with {
                    $0.confirmation = "DELETE"
                    $0.password = "wrong password 9"
                }, options: session)
        }
        let before = Int64(Date().timeIntervalSince1970)
        let deleted = try await moat.client.users.requestDeletion(
            .with {
                $0.confirmation = "DELETE"
                $0.password = memberPassword
            }, options: session)
        let after = Int64(Date().timeIntervalSince1970)
        XCTAssertEqual(deleted.status, .pendingDeletion)
        XCTAssertTrue(
            (before + 30 * 86_400...after + 30 * 86_400).contains(deleted.purgeAfterUnix), "\(deleted.purgeAfterUnix)")
        // The session is gone.
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.signOut(options: session)
        }

        // Sign-in: the reason and the purge date, after the right password only.
        await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
            _ = try await moat.signIn("acme", "member@example.com", "wrong password 9")
        }
        let refused = await rpcError { _ = try await moat.signIn("acme", "member@example.com", self.memberPassword) }
        XCTAssertEqual(refused?.code, .failedPrecondition)
        XCTAssertEqual(refused?.reason, "ACCOUNT_PENDING_DELETION")
        XCTAssertEqual(refused?.details["purge_after_unix"], "\(deleted.purgeAfterUnix)")

        // Restore (public: the user has no session), then sign in.
        await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
            _ = try await moat.client.users.restoreAccount(
                .with {
                    $0.email = "member@example.com"
                    $0.password = "wrong password 9"
                }, options: CallOptions(tenant: "acme"))
        }
        let restored = try await moat.client.users.restoreAccount(
            .with {
                $0.email = "member@example.com"
                $0.password = memberPassword
                $0.client.ip = "203.0.113.9"
            }, options: CallOptions(tenant: "acme"))
        XCTAssertEqual(restored.status, .active)
        XCTAssertEqual(restored.purgeAfterUnix, 0)
        let again = try await moat.signIn("acme", "member@example.com", memberPassword)
        XCTAssertFalse(again.sessionToken.isEmpty)

        let types = try await moat.events().map(\.type)
        XCTAssertTrue(types.contains("account.deletion_scheduled"), "\(types)")
        XCTAssertTrue(types.contains("account.restored"), "\(types)")
        XCTAssertLessThan(
            types.firstIndex(of: "account.deletion_scheduled") ?? .max, types.firstIndex(of: "account.restored") ?? -1)
        try await moat.stop()
    }

    func testLastOwnerOverTheWire() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        let owner = try await moat.signIn("acme", "owner@example.com", password)
        await expectRPCError(.failedPrecondition, "LAST_OWNER") {
            _ = try await moat.client.users.requestDeletion(
                .with {
                    $0.confirmation = "DELETE"
                    $0.password = self.password
                }, options: CallOptions(tenant: "acme", authorization: owner.sessionToken))
        }
        try await moat.stop()
    }

    func testTenantDeletionRefusesSignInUntilCancelled() async throws {
        let moat = try await AccountsFixture()
        try await moat.createTenant("acme")
        try await moat.createTenant("other")
        let owner = try await moat.signIn("acme", "owner@example.com", password)
        let otherOwner = try await moat.signIn("other", "owner@example.com", password)

        await expectRPCError(.invalidArgument, "CONFIRMATION_REQUIRED") {
            _ = try await moat.client.tenants.requestDeletion(
                .with {
                    $0.tenant = "acme"
                    $0.confirmation = "DELETE "
                })
        }
        let pending = try await moat.client.tenants.requestDeletion(
            .with {
                $0.tenant = "acme"
                $0.confirmation = "DELETE"
            })
        XCTAssertTrue(pending.pendingDeletion)
        XCTAssertGreaterThan(pending.purgeAfterUnix, Int64(Date().timeIntervalSince1970) + 29 * 86_400)
        let fetched = try await moat.client.tenants.get(.with { $0.tenant = "acme" })
        XCTAssertTrue(fetched.pendingDeletion)

        // Sessions revoked; Validate says so.
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await moat.client.users.signOut(options: CallOptions(tenant: "acme", authorization: owner.sessionToken))
        }
        let refused = await rpcError { _ = try await moat.signIn("acme", "owner@example.com", self.password) }
        XCTAssertEqual(refused?.code, .failedPrecondition)
        XCTAssertEqual(refused?.reason, "TENANT_PENDING_DELETION")
        XCTAssertEqual(refused?.details["purge_after_unix"], "\(pending.purgeAfterUnix)")
        // The other tenant goes on.
        _ = try await moat.client.users.signOut(options: CallOptions(tenant: "other", authorization: otherOwner.sessionToken))

        let cancelled = try await moat.client.tenants.cancelDeletion(.with { $0.tenant = "acme" })
        XCTAssertFalse(cancelled.pendingDeletion)
        XCTAssertEqual(cancelled.purgeAfterUnix, 0)
        _ = try await moat.signIn("acme", "owner@example.com", password)
        await expectRPCError(.failedPrecondition, "NOT_PENDING_DELETION") {
            _ = try await moat.client.tenants.cancelDeletion(.with { $0.tenant = "acme" })
        }
        let types = try await moat.events().map(\.type)
        XCTAssertTrue(types.contains("tenant.deletion_scheduled"), "\(types)")
        XCTAssertTrue(types.contains("tenant.deletion_cancelled"), "\(types)")
        try await moat.stop()
    }
}
