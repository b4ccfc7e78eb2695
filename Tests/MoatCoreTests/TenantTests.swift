import MoatCrypto
import XCTest

@testable import MoatCore

/// Tenants: create (tenant + owner + events in one transaction), get by id
/// or slug, list, policy updates.
final class TenantTests: XCTestCase {
    func testCreateWritesTenantOwnerAndBothEvents() async throws {
        let world = try World()
        let start = world.clock.now()
        let (tenant, owner) = try await world.accounts.tenants.createTenant(
            slug: " Acme-Co ", name: "  Acme Co  ", ownerEmail: "  Owner@ACME.test\n", ownerPassword: Fixture.ownerPassword)

        XCTAssertTrue(TenantID.isWellFormed(tenant.id.rawValue), tenant.id.rawValue)
        XCTAssertEqual(tenant.slug, "acme-co")
        XCTAssertEqual(tenant.name, "Acme Co")
        XCTAssertEqual(tenant.policy, TenantPolicy())
        XCTAssertEqual(tenant.createdAt, start)
        XCTAssertEqual(owner.tenantID, tenant.id)
        XCTAssertEqual(owner.email, "owner@acme.test")
        XCTAssertEqual(owner.role, .owner)
        XCTAssertEqual(owner.status, .active)
        XCTAssertEqual(owner.failedSignIns, 0)
        XCTAssertTrue(owner.passwordHash.hasPrefix("$argon2id$v=19$m=64,t=1,p=1$"), owner.passwordHash)
        XCTAssertFalse(owner.passwordHash.contains(Fixture.ownerPassword))

        // Both rows are stored.
        let storedTenant = try await world.store.read { try $0.tenant(id: tenant.id) }
        XCTAssertEqual(storedTenant, tenant)
        let storedOwner = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(storedOwner, owner)

        // Exactly two events, in order, for this tenant.
        let events = try world.events()
        XCTAssertEqual(events.map(\.record.type), ["tenant.created", "user.created"])
        XCTAssertEqual(events.map(\.record.tenantID), [tenant.id, tenant.id])
        XCTAssertEqual(events.map(\.record.subject), [tenant.id.rawValue, owner.id.rawValue])
        XCTAssertEqual(events.map(\.record.createdAt), [start, start])
        XCTAssertEqual(
            events.map(\.event),
            [
                .tenantCreated(
                    tenantID: tenant.id, slug: "acme-co", name: "Acme Co", ownerID: owner.id, ownerEmail: "owner@acme.test"),
                .userCreated(userID: owner.id, email: "owner@acme.test", role: .owner),
            ])

        // The owner signs in with the password given.
        let result = try await world.signIn(tenant, "owner@acme.test", Fixture.ownerPassword)
        XCTAssertEqual(result.user.id, owner.id)
    }

    func testGetByIdOrSlug() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant(slug: "acme")
        try await world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")

        let byID = try await world.accounts.tenant(reference: tenant.id.rawValue)
        XCTAssertEqual(byID, tenant)
        let bySlug = try await world.accounts.tenant(reference: "acme")
        XCTAssertEqual(bySlug, tenant)
        let byUpperSlug = try await world.accounts.tenant(reference: " ACME ")
        XCTAssertEqual(byUpperSlug, tenant)

        await assertDomainError(.notFound, "TENANT_NOT_FOUND") { try await world.accounts.tenant(reference: "acmee") }
        await assertDomainError(.notFound, "TENANT_NOT_FOUND") {
            try await world.accounts.tenant(reference: TenantID.random().rawValue)
        }
        await assertDomainError(.invalidArgument, "TENANT_REQUIRED") { try await world.accounts.tenant(reference: "") }
        await assertDomainError(.invalidArgument, "TENANT_REQUIRED") { try await world.accounts.tenant(reference: "   ") }
    }

    func testSlugsAreUniqueCaseInsensitively() async throws {
        let world = try World()
        try await world.makeTenant(slug: "acme")
        let before = try await world.snapshot()

        await assertDomainError(.alreadyExists, "SLUG_TAKEN") {
            try await world.accounts.tenants.createTenant(
                slug: "ACME", name: "Other Acme", ownerEmail: "someone@else.test", ownerPassword: Fixture.ownerPassword)
        }
        try await assertUnchanged(world, since: before)
        let tenants = try await world.accounts.tenants.listTenants(pageSize: 0, pageToken: "").tenants
        XCTAssertEqual(tenants.count, 1)
    }

    func testInvalidCreateWritesNothing() async throws {
        let world = try World()
        let before = try await world.snapshot()
        let cases: [(slug: String, name: String, email: String, password: String, reason: String)] = [
            ("ab", "Acme", Fixture.ownerEmail, Fixture.ownerPassword, "SLUG_INVALID"),
            (String(repeating: "a", count: 64), "Acme", Fixture.ownerEmail, Fixture.ownerPassword, "SLUG_INVALID"),
            ("-acme", "Acme", Fixture.ownerEmail, Fixture.ownerPassword, "SLUG_INVALID"),
            ("acme-", "Acme", Fixture.ownerEmail, Fixture.ownerPassword, "SLUG_INVALID"),
            ("ac_me", "Acme", Fixture.ownerEmail, Fixture.ownerPassword, "SLUG_INVALID"),
            ("acmé", "Acme", Fixture.ownerEmail, Fixture.ownerPassword, "SLUG_INVALID"),
            ("acme", "   ", Fixture.ownerEmail, Fixture.ownerPassword, "NAME_INVALID"),
            ("acme", String(repeating: "n", count: 201), Fixture.ownerEmail, Fixture.ownerPassword, "NAME_INVALID"),
            ("acme", "Ac\u{7}me", Fixture.ownerEmail, Fixture.ownerPassword, "NAME_INVALID"),
            ("acme", "Acme", "", Fixture.ownerPassword, "EMAIL_INVALID"),
            ("acme", "Acme", "not-an-email", Fixture.ownerPassword, "EMAIL_INVALID"),
            ("acme", "Acme", Fixture.ownerEmail, "short77", "PASSWORD_TOO_SHORT"),
            ("acme", "Acme", Fixture.ownerEmail, "Password1234", "PASSWORD_TOO_COMMON"),
            ("acme", "Acme", Fixture.ownerEmail, "OWNER@acme.test", "PASSWORD_IS_EMAIL"),
        ]
        for c in cases {
            await assertDomainError(.invalidArgument, c.reason) {
                try await world.accounts.tenants.createTenant(
                    slug: c.slug, name: c.name, ownerEmail: c.email, ownerPassword: c.password)
            }
        }
        try await assertUnchanged(world, since: before)
        XCTAssertTrue(world.store.allEvents.isEmpty)
    }

    func testIdsAreRandomNotSequential() async throws {
        let world = try World()
        var tenantIDs: [String] = []
        var userIDs: [String] = []
        for index in 0..<12 {
            let (tenant, owner) = try await world.makeTenant(
                slug: "tenant-\(index)", ownerEmail: "owner\(index)@acme.test")
            tenantIDs.append(tenant.id.rawValue)
            userIDs.append(owner.id.rawValue)
        }
        for id in tenantIDs { XCTAssertTrue(TenantID.isWellFormed(id), id) }
        for id in userIDs { XCTAssertTrue(UserID.isWellFormed(id), id) }
        XCTAssertEqual(Set(tenantIDs).count, 12)
        XCTAssertEqual(Set(userIDs).count, 12)
        // Creation order is not id order (1 chance in 12! for random ids).
        XCTAssertNotEqual(tenantIDs, tenantIDs.sorted())
        XCTAssertNotEqual(userIDs, userIDs.sorted())
        // Consecutive ids share no long prefix, as counters or timestamps would.
        for (a, b) in zip(tenantIDs, tenantIDs.dropFirst()) {
            let shared = zip(a.dropFirst(3), b.dropFirst(3)).prefix { $0 == $1 }.count
            XCTAssertLessThan(shared, 8, "\(a) and \(b)")
        }
    }

    func testListIsPagedBySlug() async throws {
        let world = try World()
        for slug in ["delta", "alpha", "echo", "charlie", "bravo"] {
            try await world.makeTenant(slug: slug, ownerEmail: "owner@\(slug).test")
        }
        var slugs: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await world.accounts.tenants.listTenants(pageSize: 2, pageToken: token)
            XCTAssertLessThanOrEqual(page.tenants.count, 2)
            slugs += page.tenants.map(\.slug)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 10
        XCTAssertEqual(slugs, ["alpha", "bravo", "charlie", "delta", "echo"])
        XCTAssertEqual(pages, 3)

        let all = try await world.accounts.tenants.listTenants(pageSize: 0, pageToken: "")
        XCTAssertEqual(all.tenants.map(\.slug), slugs)
        XCTAssertEqual(all.nextPageToken, "")
        let exact = try await world.accounts.tenants.listTenants(pageSize: 5, pageToken: "")
        XCTAssertEqual(exact.tenants.count, 5)
        XCTAssertEqual(exact.nextPageToken, "", "no further page when the page is exactly full")

        await assertDomainError(.invalidArgument, "PAGE_SIZE_INVALID") {
            try await world.accounts.tenants.listTenants(pageSize: 501, pageToken: "")
        }
        await assertDomainError(.invalidArgument, "PAGE_SIZE_INVALID") {
            try await world.accounts.tenants.listTenants(pageSize: -1, pageToken: "")
        }
        await assertDomainError(.invalidArgument, "PAGE_TOKEN_INVALID") {
            try await world.accounts.tenants.listTenants(pageSize: 2, pageToken: "not base64 !")
        }
    }

    func testUpdatePolicyValidatesPersistsAndEmits() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let sequence = world.lastSequence

        let policy = try await world.accounts.tenants.updatePolicy(tenant: "acme") { policy in
            policy.minPasswordLength = 12
            policy.sessionIdleTimeoutSeconds = 600
            policy.sessionAbsoluteLifetimeSeconds = 3600
            policy.lockoutThreshold = 3
            policy.lockoutBaseDelaySeconds = 10
            policy.lockoutMaxDelaySeconds = 40
            policy.maxSessionsPerUser = 2
        }
        var expected = TenantPolicy()
        expected.minPasswordLength = 12
        expected.sessionIdleTimeoutSeconds = 600
        expected.sessionAbsoluteLifetimeSeconds = 3600
        expected.lockoutThreshold = 3
        expected.lockoutBaseDelaySeconds = 10
        expected.lockoutMaxDelaySeconds = 40
        expected.maxSessionsPerUser = 2
        XCTAssertEqual(policy, expected)
        let reloaded = try await world.accounts.tenant(reference: tenant.id.rawValue)
        XCTAssertEqual(reloaded.policy, expected)
        XCTAssertEqual(reloaded.slug, tenant.slug)
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.event), [.tenantPolicyUpdated(tenantID: tenant.id)])
        XCTAssertEqual(events.first?.record.tenantID, tenant.id)
    }

    func testInvalidPoliciesAreRefusedAndChangeNothing() async throws {
        let world = try World()
        try await world.makeTenant()
        let before = try await world.snapshot()
        let invalid: [(String, @Sendable (inout TenantPolicy) -> Void)] = [
            ("min length 7", { $0.minPasswordLength = 7 }),
            ("min length 0", { $0.minPasswordLength = 0 }),
            ("min length 1025", { $0.minPasswordLength = 1025 }),
            ("idle 299", { $0.sessionIdleTimeoutSeconds = 299 }),
            ("absolute below idle", {
                $0.sessionIdleTimeoutSeconds = 7200
                $0.sessionAbsoluteLifetimeSeconds = 3600
            }),
            ("threshold 0", { $0.lockoutThreshold = 0 }),
            ("threshold 101", { $0.lockoutThreshold = 101 }),
            ("base delay 0", { $0.lockoutBaseDelaySeconds = 0 }),
            ("max below base", {
                $0.lockoutBaseDelaySeconds = 120
                $0.lockoutMaxDelaySeconds = 60
            }),
            ("max above a day", { $0.lockoutMaxDelaySeconds = 86401 }),
            ("negative session cap", { $0.maxSessionsPerUser = -1 }),
            ("session cap 1001", { $0.maxSessionsPerUser = 1001 }),
        ]
        for (label, change) in invalid {
            let error = await assertDomainError(.invalidArgument, "POLICY_INVALID") {
                try await world.accounts.tenants.updatePolicy(tenant: "acme", change: change)
            }
            XCTAssertNotNil(error, label)
        }
        try await assertUnchanged(world, since: before)

        // The boundaries themselves are accepted.
        let policy = try await world.accounts.tenants.updatePolicy(tenant: "acme") {
            $0.minPasswordLength = 8
            $0.sessionIdleTimeoutSeconds = 300
            $0.sessionAbsoluteLifetimeSeconds = 300
            $0.lockoutThreshold = 100
            $0.maxSessionsPerUser = 1000
        }
        XCTAssertEqual(policy.minPasswordLength, 8)
        XCTAssertEqual(policy.lockoutThreshold, 100)
    }

    func testUpdatePolicyOfUnknownTenantIsNotFound() async throws {
        let world = try World()
        try await world.makeTenant()
        let before = try await world.snapshot()
        await assertDomainError(.notFound, "TENANT_NOT_FOUND") {
            try await world.accounts.tenants.updatePolicy(tenant: "nope") { $0.minPasswordLength = 10 }
        }
        await assertDomainError(.notFound, "TENANT_NOT_FOUND") {
            try await world.accounts.tenants.updatePolicy(tenant: TenantID.random().rawValue) { $0.minPasswordLength = 10 }
        }
        try await assertUnchanged(world, since: before)
    }

    /// Two policy updates of different fields at the same time both land:
    /// the change is applied to the policy as stored when the write runs,
    /// not to a copy read before it.
    func testConcurrentPolicyUpdatesKeepBothChanges() async throws {
        let world = try World()
        try await world.makeTenant()
        let held = HeldWriteStore(inner: world.store)
        let accounts = AccountService(store: held, hasher: world.hasher, clock: world.clock)
        held.holdNextWrite()
        let first = Task { try await accounts.tenants.updatePolicy(tenant: "acme") { $0.lockoutThreshold = 3 } }
        await held.waitUntilHoldingWrite()
        _ = try await accounts.tenants.updatePolicy(tenant: "acme") { $0.maxSessionsPerUser = 2 }
        held.releaseWrite()
        _ = try await first.value

        let stored = try await world.store.read { try $0.tenant(slug: "acme") }
        XCTAssertEqual(stored?.policy.maxSessionsPerUser, 2, "the second update survives")
        XCTAssertEqual(stored?.policy.lockoutThreshold, 3, "the first update survives")
        XCTAssertEqual(world.store.allEvents.filter { $0.type == "tenant.policy_updated" }.count, 2)
    }

    func testMinimumPasswordLengthPolicyApplies() async throws {
        let world = try World()
        let (initial, _) = try await world.makeTenant()
        let tenant = try await world.setPolicy(initial) { $0.minPasswordLength = 12 }
        let before = try await world.snapshot()
        let error = await assertDomainError(.invalidArgument, "PASSWORD_TOO_SHORT") {
            try await world.makeUser(tenant, email: "bob@acme.test", password: makePassword(length: 11))
        }
        XCTAssertEqual(error?.details["min_length"], "12")
        try await assertUnchanged(world, since: before)
        try await world.makeUser(tenant, email: "bob@acme.test", password: makePassword(length: 12))
    }

    func testSessionLifetimesFollowPolicy() async throws {
        let world = try World()
        let (initial, _) = try await world.makeTenant()
        let tenant = try await world.setPolicy(initial) {
            $0.sessionIdleTimeoutSeconds = 600
            $0.sessionAbsoluteLifetimeSeconds = 900
        }
        let start = world.clock.now()
        let result = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        XCTAssertEqual(result.session.createdAt, start)
        XCTAssertEqual(result.session.idleTimeoutSeconds, 600)
        XCTAssertEqual(result.session.absoluteExpiresAt, start.adding(seconds: 900))

        let idle = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        world.clock.advance(seconds: 599)
        _ = try await world.accounts.authenticate(tenant: tenant.id, token: result.token)
        world.clock.advance(seconds: 1)
        // Unused for 600 s: over.
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.authenticate(tenant: tenant.id, token: idle.token)
        }
        // Past the absolute lifetime, however recently used.
        world.clock.advance(seconds: 300)
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.authenticate(tenant: tenant.id, token: result.token)
        }

        // Default policy: 14 days idle, 30 days absolute.
        let (other, _) = try await world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        let now = world.clock.now()
        let session = try await world.signIn(other, "owner@globex.test", Fixture.ownerPassword).session
        XCTAssertEqual(session.idleTimeoutSeconds, 14 * 86400)
        XCTAssertEqual(session.absoluteExpiresAt, now.adding(seconds: 30 * 86400))
    }
}
