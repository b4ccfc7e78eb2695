import XCTest

@testable import MoatCore

/// Users: create (who may create whom), get, list, disable and enable.
final class UserManagementTests: XCTestCase {
    /// A tenant with an owner, an admin and a member, each signed in.
    struct Team {
        var tenant: Tenant
        var owner: User
        var admin: User
        var member: User
        var ownerToken: String
        var adminToken: String
        var memberToken: String
    }

    func makeTeam(_ world: World, slug: String = "acme") async throws -> Team {
        let (tenant, owner) = try await world.makeTenant(slug: slug, ownerEmail: "owner@\(slug).test")
        let admin = try await world.makeUser(
            tenant, email: "admin@\(slug).test", password: Fixture.adminPassword, role: .admin)
        let member = try await world.makeUser(tenant, email: "member@\(slug).test")
        let ownerToken = try await world.signIn(tenant, owner.email, Fixture.ownerPassword).token
        let adminToken = try await world.signIn(tenant, admin.email, Fixture.adminPassword).token
        let memberToken = try await world.signIn(tenant, member.email, Fixture.memberPassword).token
        return Team(
            tenant: tenant, owner: owner, admin: admin, member: member, ownerToken: ownerToken, adminToken: adminToken,
            memberToken: memberToken)
    }

    // MARK: Create

    func testAdministratorCreatesUserWithNormalizedEmailAndEvent() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let sequence = world.lastSequence
        let now = world.clock.now()
        let user = try await world.accounts.users.createUser(
            tenant: tenant, actor: .administrator, email: "  New.Person@ACME.test ", password: Fixture.memberPassword,
            role: .member)
        XCTAssertEqual(user.email, "new.person@acme.test")
        XCTAssertEqual(user.tenantID, tenant.id)
        XCTAssertEqual(user.role, .member)
        XCTAssertEqual(user.status, .active)
        XCTAssertEqual(user.createdAt, now)
        XCTAssertTrue(UserID.isWellFormed(user.id.rawValue))
        let stored = try await world.storedUser(tenant, user.id)
        XCTAssertEqual(stored, user)
        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.event), [.userCreated(userID: user.id, email: "new.person@acme.test", role: .member)])
        XCTAssertEqual(events.map(\.record.tenantID), [tenant.id])
        XCTAssertEqual(events.map(\.record.subject), [user.id.rawValue])

        let signedIn = try await world.signIn(tenant, "new.person@acme.test", Fixture.memberPassword)
        XCTAssertEqual(signedIn.user.id, user.id)
    }

    func testWhoMayCreateWhom() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let owner = try await world.actor(team.tenant, token: team.ownerToken)
        let admin = try await world.actor(team.tenant, token: team.adminToken)
        let member = try await world.actor(team.tenant, token: team.memberToken)

        // Owners create every role; administrators (processes) too.
        for role in TenantRole.allCases {
            let byOwner = try await world.accounts.users.createUser(
                tenant: team.tenant, actor: owner, email: "o-\(role.rawValue)@acme.test",
                password: Fixture.memberPassword, role: role)
            XCTAssertEqual(byOwner.role, role)
            let byProcess = try await world.accounts.users.createUser(
                tenant: team.tenant, actor: .administrator, email: "p-\(role.rawValue)@acme.test",
                password: Fixture.memberPassword, role: role)
            XCTAssertEqual(byProcess.role, role)
        }
        // Admins create members and admins, never owners.
        let byAdmin = try await world.accounts.users.createUser(
            tenant: team.tenant, actor: admin, email: "a-member@acme.test", password: Fixture.memberPassword,
            role: .member)
        XCTAssertEqual(byAdmin.role, .member)
        let adminByAdmin = try await world.accounts.users.createUser(
            tenant: team.tenant, actor: admin, email: "a-admin@acme.test", password: Fixture.memberPassword, role: .admin)
        XCTAssertEqual(adminByAdmin.role, .admin)

        let before = try await world.snapshot()
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await world.accounts.users.createUser(
                tenant: team.tenant, actor: admin, email: "a-owner@acme.test", password: Fixture.memberPassword,
                role: .owner)
        }
        // Members create nobody.
        for role in TenantRole.allCases {
            await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
                try await world.accounts.users.createUser(
                    tenant: team.tenant, actor: member, email: "m-\(role.rawValue)@acme.test",
                    password: Fixture.memberPassword, role: role)
            }
        }
        try await assertUnchanged(world, since: before)
    }

    func testEmailIsUniquePerTenantAfterNormalization() async throws {
        let world = try World()
        let (acme, _) = try await world.makeTenant(slug: "acme")
        let (globex, _) = try await world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        try await world.makeUser(acme, email: "bob@example.test")
        let before = try await world.snapshot()
        await assertDomainError(.alreadyExists, "EMAIL_TAKEN") {
            try await world.makeUser(acme, email: "  BOB@Example.TEST ", password: Fixture.adminPassword)
        }
        await assertDomainError(.alreadyExists, "EMAIL_TAKEN") {
            try await world.makeUser(acme, email: Fixture.ownerEmail, password: Fixture.adminPassword)
        }
        try await assertUnchanged(world, since: before)
        // The same address in another tenant is another account.
        let other = try await world.makeUser(globex, email: "bob@example.test", password: Fixture.adminPassword)
        XCTAssertEqual(other.tenantID, globex.id)
        let inAcme = try await world.signIn(acme, "bob@example.test", Fixture.memberPassword)
        let inGlobex = try await world.signIn(globex, "bob@example.test", Fixture.adminPassword)
        XCTAssertNotEqual(inAcme.user.id, inGlobex.user.id)
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(globex, "bob@example.test", Fixture.memberPassword)
        }
    }

    // MARK: Get and list

    func testGetIsForSelfOrManagers() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let owner = try await world.actor(team.tenant, token: team.ownerToken)
        let admin = try await world.actor(team.tenant, token: team.adminToken)
        let member = try await world.actor(team.tenant, token: team.memberToken)

        let selfView = try await world.accounts.users.user(tenant: team.tenant, actor: member, id: team.member.id.rawValue)
        XCTAssertEqual(selfView.id, team.member.id)
        let byAdmin = try await world.accounts.users.user(tenant: team.tenant, actor: admin, id: team.owner.id.rawValue)
        XCTAssertEqual(byAdmin.id, team.owner.id)
        let byOwner = try await world.accounts.users.user(tenant: team.tenant, actor: owner, id: team.member.id.rawValue)
        XCTAssertEqual(byOwner.email, "member@acme.test")
        let byProcess = try await world.accounts.users.user(
            tenant: team.tenant, actor: .administrator, id: team.admin.id.rawValue)
        XCTAssertEqual(byProcess.role, .admin)

        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await world.accounts.users.user(tenant: team.tenant, actor: member, id: team.owner.id.rawValue)
        }
        await assertDomainError(.notFound, "USER_NOT_FOUND") {
            try await world.accounts.users.user(tenant: team.tenant, actor: admin, id: UserID.random().rawValue)
        }
        await assertDomainError(.notFound, "USER_NOT_FOUND") {
            try await world.accounts.users.user(tenant: team.tenant, actor: admin, id: "us_not-an-id")
        }
        await assertDomainError(.notFound, "USER_NOT_FOUND") {
            try await world.accounts.users.user(tenant: team.tenant, actor: admin, id: team.tenant.id.rawValue)
        }
    }

    func testListIsPagedAndTenantScoped() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        for name in ["erin", "carol", "dave"] { try await world.makeUser(team.tenant, email: "\(name)@acme.test") }
        let other = try await makeTeam(world, slug: "globex")
        try await world.makeUser(other.tenant, email: "zed@globex.test")
        try await world.makeUser(other.tenant, email: "carol@acme.test")  // same address, other tenant

        let admin = try await world.actor(team.tenant, token: team.adminToken)
        var emails: [String] = []
        var ids: [UserID] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await world.accounts.users.listUsers(tenant: team.tenant, actor: admin, pageSize: 2, pageToken: token)
            XCTAssertLessThanOrEqual(page.users.count, 2)
            XCTAssertTrue(page.users.allSatisfy { $0.tenantID == team.tenant.id })
            emails += page.users.map(\.email)
            ids += page.users.map(\.id)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 10
        XCTAssertEqual(
            emails,
            ["admin@acme.test", "carol@acme.test", "dave@acme.test", "erin@acme.test", "member@acme.test", "owner@acme.test"])
        XCTAssertEqual(pages, 3)
        XCTAssertEqual(Set(ids).count, 6)

        let otherUsers = try await world.accounts.users.listUsers(
            tenant: other.tenant, actor: .administrator, pageSize: 0, pageToken: "")
        XCTAssertEqual(otherUsers.users.count, 5)
        XCTAssertTrue(Set(otherUsers.users.map(\.id)).isDisjoint(with: ids))

        let member = try await world.actor(team.tenant, token: team.memberToken)
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await world.accounts.users.listUsers(tenant: team.tenant, actor: member, pageSize: 0, pageToken: "")
        }
    }

    // MARK: Disable and enable

    func testDisableRevokesEverySessionAndEmits() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let secondToken = try await world.signIn(team.tenant, team.member.email, Fixture.memberPassword).token
        let liveBefore = try await world.liveSessions(team.tenant, team.member.id)
        XCTAssertEqual(liveBefore.count, 2)
        let admin = try await world.actor(team.tenant, token: team.adminToken)
        let sequence = world.lastSequence

        let disabled = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: admin, id: team.member.id.rawValue, enabled: false)
        XCTAssertEqual(disabled.status, .disabled)
        let stored = try await world.storedUser(team.tenant, team.member.id)
        XCTAssertEqual(stored?.status, .disabled)

        for token in [team.memberToken, secondToken] {
            await assertDomainError(.unauthenticated, "SESSION_INVALID") {
                try await world.accounts.authenticate(tenant: team.tenant.id, token: token)
            }
        }
        let liveAfter = try await world.liveSessions(team.tenant, team.member.id)
        XCTAssertTrue(liveAfter.isEmpty)
        // Other users' sessions are untouched.
        _ = try await world.accounts.authenticate(tenant: team.tenant.id, token: team.ownerToken)

        let events = try world.events(after: sequence)
        XCTAssertEqual(events.map(\.record.type), ["session.revoked", "session.revoked", "user.disabled"])
        let revoked = events.prefix(2).compactMap { item -> SessionID? in
            guard case .sessionRevoked(let id, let user, let reason) = item.event, user == team.member.id,
                reason == "user_disabled"
            else { return nil }
            return id
        }
        XCTAssertEqual(Set(revoked), Set(liveBefore.map(\.id)))
        XCTAssertEqual(events.last?.event, .userDisabled(userID: team.member.id, email: "member@acme.test"))
        let log = try await world.securityLog(team.tenant, team.member.id)
        XCTAssertEqual(log.last?.kind, .userDisabled)

        // Disabling again changes nothing.
        let before = try await world.snapshot()
        let again = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: admin, id: team.member.id.rawValue, enabled: false)
        XCTAssertEqual(again.status, .disabled)
        try await assertUnchanged(world, since: before)

        // Enabling brings sign-in back, not the old sessions.
        let enabledSequence = world.lastSequence
        let enabled = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: admin, id: team.member.id.rawValue, enabled: true)
        XCTAssertEqual(enabled.status, .active)
        XCTAssertEqual(
            try world.events(after: enabledSequence).map(\.event),
            [.userEnabled(userID: team.member.id, email: "member@acme.test")])
        let enabledLog = try await world.securityLog(team.tenant, team.member.id)
        XCTAssertEqual(enabledLog.last?.kind, .userEnabled)
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await world.accounts.authenticate(tenant: team.tenant.id, token: secondToken)
        }
        _ = try await world.signIn(team.tenant, team.member.email, Fixture.memberPassword)
    }

    func testDisabledAccountIsToldOnlyAfterTheRightPassword() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        _ = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: .administrator, id: team.member.id.rawValue, enabled: false)
        let unknown = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(team.tenant, "nobody@acme.test", Fixture.memberPassword)
        }
        let wrong = await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(team.tenant, team.member.email, "wrong-password-123")
        }
        XCTAssertEqual(wrong, unknown)
        let sessionsBefore = try await world.liveSessions(team.tenant, team.member.id)
        await assertDomainError(.failedPrecondition, "ACCOUNT_DISABLED") {
            try await world.signIn(team.tenant, team.member.email, Fixture.memberPassword)
        }
        let sessionsAfter = try await world.liveSessions(team.tenant, team.member.id)
        XCTAssertEqual(sessionsBefore, sessionsAfter)
        XCTAssertTrue(sessionsAfter.isEmpty)
    }

    func testNobodyDisablesThemself() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let before = try await world.snapshot()
        for (token, user) in [(team.ownerToken, team.owner), (team.adminToken, team.admin)] {
            let actor = try await world.actor(team.tenant, token: token)
            for enabled in [false, true] {
                await assertDomainError(.failedPrecondition, "CANNOT_DISABLE_SELF") {
                    try await world.accounts.users.setUserEnabled(
                        tenant: team.tenant, actor: actor, id: user.id.rawValue, enabled: enabled)
                }
            }
        }
        try await assertUnchanged(world, since: before)
    }

    func testAdminCannotDisableOrEnableAnOwner() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let admin = try await world.actor(team.tenant, token: team.adminToken)
        let before = try await world.snapshot()
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await world.accounts.users.setUserEnabled(
                tenant: team.tenant, actor: admin, id: team.owner.id.rawValue, enabled: false)
        }
        try await assertUnchanged(world, since: before)
        _ = try await world.accounts.authenticate(tenant: team.tenant.id, token: team.ownerToken)

        // A second owner, disabled by the first, stays disabled for admins.
        let second = try await world.makeUser(
            team.tenant, email: "owner2@acme.test", password: Fixture.adminPassword, role: .owner)
        let owner = try await world.actor(team.tenant, token: team.ownerToken)
        _ = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: owner, id: second.id.rawValue, enabled: false)
        let beforeEnable = try await world.snapshot()
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await world.accounts.users.setUserEnabled(
                tenant: team.tenant, actor: admin, id: second.id.rawValue, enabled: true)
        }
        try await assertUnchanged(world, since: beforeEnable)

        // An admin may disable a member and another admin.
        _ = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: admin, id: team.member.id.rawValue, enabled: false)
        let otherAdmin = try await world.makeUser(
            team.tenant, email: "admin2@acme.test", password: Fixture.adminPassword, role: .admin)
        let disabled = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: admin, id: otherAdmin.id.rawValue, enabled: false)
        XCTAssertEqual(disabled.status, .disabled)
    }

    func testMembersCannotDisableAnyone() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let other = try await world.makeUser(team.tenant, email: "other@acme.test")
        let member = try await world.actor(team.tenant, token: team.memberToken)
        let before = try await world.snapshot()
        for id in [other.id, team.admin.id, team.owner.id] {
            await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
                try await world.accounts.users.setUserEnabled(tenant: team.tenant, actor: member, id: id.rawValue, enabled: false)
            }
        }
        try await assertUnchanged(world, since: before)
    }

    func testDisablingUnknownUserIsNotFound() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        let before = try await world.snapshot()
        for id in [UserID.random().rawValue, "garbage", ""] {
            await assertDomainError(.notFound, "USER_NOT_FOUND") {
                try await world.accounts.users.setUserEnabled(tenant: team.tenant, actor: .administrator, id: id, enabled: false)
            }
        }
        try await assertUnchanged(world, since: before)
    }

    func testEnablingClearsLockout() async throws {
        let world = try World()
        let team = try await makeTeam(world)
        for _ in 0..<5 {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.signIn(team.tenant, team.member.email, "wrong-password-123")
            }
        }
        await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(team.tenant, team.member.email, Fixture.memberPassword)
        }
        _ = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: .administrator, id: team.member.id.rawValue, enabled: false)
        _ = try await world.accounts.users.setUserEnabled(
            tenant: team.tenant, actor: .administrator, id: team.member.id.rawValue, enabled: true)
        let stored = try await world.storedUser(team.tenant, team.member.id)
        XCTAssertEqual(stored?.failedSignIns, 0)
        XCTAssertNil(stored?.lockedUntil)
        _ = try await world.signIn(team.tenant, team.member.email, Fixture.memberPassword)
    }
}
