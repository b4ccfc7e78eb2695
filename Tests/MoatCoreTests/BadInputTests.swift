import XCTest

@testable import MoatCore

/// Empty and oversized emails, unknown tenants: refused, nothing written.
final class BadInputTests: XCTestCase {
    static let hugeEmail = String(repeating: "a", count: 9_990) + "@acme.test"  // 10,000 characters

    func testEmailNormalization() throws {
        XCTAssertEqual(try EmailAddress.normalize("  Bob.Smith@Example.COM \n"), "bob.smith@example.com")
        XCTAssertEqual(Self.hugeEmail.count, 10_000)
        let local = String(repeating: "b", count: 244)
        XCTAssertEqual(try EmailAddress.normalize(local + "@acme.test").utf8.count, 254)
        for bad in [
            "", "   ", "\n", Self.hugeEmail, "b" + local + "@acme.test", "no-at-sign", "@acme.test", "bob@", "bob@acme",
            "bob@.acme.test", "bob@acme.test.", "bob@@acme.test", "b@b@acme.test", "bob smith@acme.test",
            "bob\u{0}@acme.test", "bob\u{7F}@acme.test", "bob@acme\u{A0}.test",
        ] {
            XCTAssertThrowsError(try EmailAddress.normalize(bad), bad.debugDescription) { error in
                XCTAssertEqual((error as? DomainError)?.kind, .invalidArgument, bad.debugDescription)
                XCTAssertEqual((error as? DomainError)?.reason, "EMAIL_INVALID", bad.debugDescription)
            }
        }
    }

    func testBadEmailsAreRefusedEverywhereAndWriteNothing() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let before = try await world.snapshot()
        for email in ["", "   ", Self.hugeEmail] {
            await assertDomainError(.invalidArgument, "EMAIL_INVALID") {
                try await world.signIn(tenant, email, Fixture.ownerPassword)
            }
            await assertDomainError(.invalidArgument, "EMAIL_INVALID") {
                try await world.makeUser(tenant, email: email)
            }
            await assertDomainError(.invalidArgument, "EMAIL_INVALID") {
                try await world.accounts.passwords.requestPasswordReset(tenant: tenant, email: email, client: Fixture.client)
            }
            await assertDomainError(.invalidArgument, "EMAIL_INVALID") {
                try await world.accounts.tenants.createTenant(
                    slug: "other", name: "Other", ownerEmail: email, ownerPassword: Fixture.ownerPassword)
            }
        }
        try await assertUnchanged(world, since: before)
    }

    func testUnknownTenantIsNotFoundAndWritesNothing() async throws {
        let world = try World()
        try await world.makeTenant()
        let before = try await world.snapshot()
        for reference in ["globex", "GLOBEX", TenantID.random().rawValue, String(repeating: "x", count: 10_000), "tn_", "acme!"] {
            await assertDomainError(.notFound, "TENANT_NOT_FOUND") { try await world.accounts.tenant(reference: reference) }
            await assertDomainError(.notFound, "TENANT_NOT_FOUND") {
                try await world.accounts.tenants.updatePolicy(tenant: reference) { $0.maxSessionsPerUser = 3 }
            }
        }
        await assertDomainError(.invalidArgument, "TENANT_REQUIRED") { try await world.accounts.tenant(reference: "") }
        try await assertUnchanged(world, since: before)
    }

    func testBadPagingIsRefused() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        for size in [-1, 501, Int.max] {
            await assertDomainError(.invalidArgument, "PAGE_SIZE_INVALID") {
                try await world.accounts.users.listUsers(tenant: tenant, actor: .administrator, pageSize: size, pageToken: "")
            }
        }
        for token in ["%%%", String(repeating: "QUFB", count: 200), "/w=="] {
            await assertDomainError(.invalidArgument, "PAGE_TOKEN_INVALID") {
                try await world.accounts.users.listUsers(tenant: tenant, actor: .administrator, pageSize: 10, pageToken: token)
            }
        }
        let full = try await world.accounts.users.listUsers(tenant: tenant, actor: .administrator, pageSize: 500, pageToken: "")
        XCTAssertEqual(full.users.count, 1)
    }
}
