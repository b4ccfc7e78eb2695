import XCTest

@testable import MoatCore

/// Every Teams method by every kind of caller: team owner, admin and member,
/// a tenant member outside the team, the tenant's owner and admin (not in
/// the team), a user of another tenant, and the administrator process. Each
/// cell runs on a fresh team; a refused call changes nothing, an allowed one
/// has its effect.
final class TeamRoleMatrixTests: XCTestCase {
    typealias Who = TeamWorld.Who

    /// One method of the matrix: what it does, which action of the role table
    /// it is checked against, and how to see that it worked.
    struct Method {
        var name: String
        var action: TeamAction
        /// Runs before the call (on the fresh team); returns context for `call`.
        var prepare: (TeamWorld, Team) async throws -> String = { _, _ in "" }
        var call: (TeamWorld, Team, Principal, Tenant, String) async throws -> Void
        /// Checks the effect of a successful call.
        var verify: (TeamWorld, Team, Who) async throws -> Void = { _, _, _ in }
        var expected: [Who: Outcome]
    }

    static let ok = Outcome.ok
    static let nf = Outcome.notFound
    static let denied = Outcome.denied

    /// Rows: teamOwner, teamAdmin, teamMember, outsider, tenantOwner,
    /// tenantAdmin, foreign, administrator.
    static func row(_ outcomes: [Outcome]) -> [Who: Outcome] {
        Dictionary(uniqueKeysWithValues: zip(Who.allCases, outcomes))
    }

    static let viewRow = row([ok, ok, ok, nf, ok, ok, nf, ok])
    static let adminRow = row([ok, ok, denied, nf, ok, ok, nf, ok])
    static let ownerRow = row([ok, denied, denied, nf, ok, denied, nf, ok])

    static var methods: [Method] {
        [
            Method(
                name: "get", action: .view,
                call: { w, team, actor, tenant, _ in _ = try await w.accounts.teams.team(tenant: tenant, actor: actor, id: team.id.rawValue) },
                expected: viewRow),
            Method(
                name: "list members", action: .view,
                call: { w, team, actor, tenant, _ in
                    let members = try await w.accounts.teams.listTeamMembers(tenant: tenant, actor: actor, teamID: team.id.rawValue)
                    XCTAssertEqual(
                        members.map(\.email), ["tadmin@acme.test", "tmember@acme.test", "towner@acme.test"])
                },
                expected: viewRow),
            Method(
                name: "rename", action: .rename,
                call: { w, team, actor, tenant, _ in
                    _ = try await w.accounts.teams.renameTeam(tenant: tenant, actor: actor, id: team.id.rawValue, name: "Renamed")
                },
                verify: { w, team, _ in
                    let stored = try await w.world.store.read { try $0.team(tenant: team.tenantID, id: team.id) }
                    XCTAssertEqual(stored?.name, "Renamed")
                },
                expected: adminRow),
            Method(
                name: "delete", action: .delete,
                call: { w, team, actor, tenant, _ in try await w.accounts.teams.deleteTeam(tenant: tenant, actor: actor, id: team.id.rawValue) },
                verify: { w, team, _ in
                    let stored = try await w.world.store.read { try $0.team(tenant: team.tenantID, id: team.id) }
                    XCTAssertNil(stored)
                },
                expected: ownerRow),
            Method(
                name: "invite", action: .invite,
                call: { w, team, actor, tenant, _ in
                    _ = try await w.accounts.teams.invite(
                        tenant: tenant, actor: actor, teamID: team.id.rawValue, email: "new@acme.test", role: .member)
                },
                verify: { w, team, _ in
                    let open = try await w.world.store.read { try $0.openTeamInvitations(tenant: team.tenantID, team: team.id) }
                    XCTAssertEqual(open.map(\.email), ["new@acme.test"])
                },
                expected: adminRow),
            Method(
                name: "list invitations", action: .invite,
                prepare: { w, team in try await Self.ownerInvites(w, team) },
                call: { w, team, actor, tenant, _ in
                    let listed = try await w.accounts.teams.listInvitations(tenant: tenant, actor: actor, teamID: team.id.rawValue)
                    XCTAssertEqual(listed.map(\.email), ["new@acme.test"])
                },
                expected: adminRow),
            Method(
                name: "revoke invitation", action: .invite,
                prepare: { w, team in try await Self.ownerInvites(w, team) },
                call: { w, _, actor, tenant, invitation in
                    try await w.accounts.teams.revokeInvitation(tenant: tenant, actor: actor, id: invitation)
                },
                verify: { w, team, _ in
                    let open = try await w.world.store.read { try $0.openTeamInvitations(tenant: team.tenantID, team: team.id) }
                    XCTAssertEqual(open, [])
                },
                expected: row([
                    ok, ok, denied, .failed(.notFound, "INVITATION_NOT_FOUND"), ok, ok,
                    .failed(.notFound, "INVITATION_NOT_FOUND"), ok,
                ])),
            Method(
                name: "change role", action: .manageMembers,
                call: { w, team, actor, tenant, _ in
                    _ = try await w.accounts.teams.changeTeamRole(
                        tenant: tenant, actor: actor, teamID: team.id.rawValue, userID: w.user(.teamMember).id.rawValue,
                        role: .admin)
                },
                verify: { w, team, _ in
                    let role = try await w.role(.teamMember, in: team)
                    XCTAssertEqual(role, .admin)
                },
                expected: adminRow),
            Method(
                name: "remove member", action: .manageMembers,
                call: { w, team, actor, tenant, _ in
                    try await w.accounts.teams.removeTeamMember(
                        tenant: tenant, actor: actor, teamID: team.id.rawValue, userID: w.user(.teamMember).id.rawValue)
                },
                verify: { w, team, _ in
                    let role = try await w.role(.teamMember, in: team)
                    XCTAssertNil(role)
                },
                expected: adminRow),
            Method(
                name: "transfer ownership", action: .transferOwnership,
                call: { w, team, actor, tenant, _ in
                    try await w.accounts.teams.transferTeamOwnership(
                        tenant: tenant, actor: actor, teamID: team.id.rawValue, userID: w.user(.teamMember).id.rawValue)
                },
                verify: { w, team, who in
                    let newOwner = try await w.role(.teamMember, in: team)
                    let previous = try await w.role(.teamOwner, in: team)
                    XCTAssertEqual(newOwner, .owner)
                    // Only a calling member who was owner steps down.
                    XCTAssertEqual(previous, who == .teamOwner ? .admin : .owner)
                },
                expected: ownerRow),
        ]
    }

    /// The team owner invites new@acme.test; returns the invitation id.
    static func ownerInvites(_ w: TeamWorld, _ team: Team) async throws -> String {
        try await w.accounts.teams.invite(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team.id.rawValue, email: "new@acme.test",
            role: .member
        ).id.rawValue
    }

    func testEveryMethodByEveryCaller() async throws {
        let w = try await TeamWorld.make()
        var cells = 0
        for method in Self.methods {
            for who in Who.allCases {
                let team = try await w.freshTeam("\(method.name) by \(who)")
                let context = try await method.prepare(w, team)
                let actor = try await w.actor(who)
                let before = w.world.store.allEvents.count
                let logBefore = w.world.store.allSecurityLog.count
                let outcome = await Outcome.of {
                    try await method.call(w, team, actor, w.tenant(of: who), context)
                }
                let expected = try XCTUnwrap(method.expected[who])
                XCTAssertEqual(outcome, expected, "\(method.name) by \(who)")
                if outcome == .ok {
                    try await method.verify(w, team, who)
                } else {
                    XCTAssertEqual(w.world.store.allEvents.count, before, "\(method.name) by \(who) wrote events")
                    XCTAssertEqual(
                        w.world.store.allSecurityLog.count, logBefore, "\(method.name) by \(who) wrote the security log")
                }
                cells += 1
            }
        }
        XCTAssertEqual(cells, Self.methods.count * Who.allCases.count)
    }

    /// CheckPermission agrees with the methods: the allowed cells of the
    /// matrix are exactly those where the caller's effective role meets the
    /// action's minimum role.
    func testCheckPermissionAgreesWithTheMatrix() async throws {
        let w = try await TeamWorld.make()
        for method in Self.methods {
            for who in Who.allCases where who != .administrator && who != .foreign {
                let answer = try await w.accounts.teams.checkTeamPermission(
                    tenant: w.acme, sessionToken: w.tokens[who]!, teamID: w.team.id.rawValue, action: method.action)
                let expected = try XCTUnwrap(method.expected[who])
                XCTAssertEqual(answer.allowed, expected == .ok, "\(method.name) (\(method.action)) by \(who)")
            }
        }
    }

    func testCheckPermissionRolesAndActions() async throws {
        let w = try await TeamWorld.make()
        let roles: [Who: TeamRole?] = [
            .teamOwner: .owner, .teamAdmin: .admin, .teamMember: .member, .outsider: nil, .tenantOwner: .owner,
            .tenantAdmin: .admin,
        ]
        for (who, role) in roles {
            for action in TeamAction.allCases {
                let answer = try await w.accounts.teams.checkTeamPermission(
                    tenant: w.acme, sessionToken: w.tokens[who]!, teamID: w.team.id.rawValue, action: action)
                XCTAssertEqual(answer.role, role, "\(who) \(action)")
                XCTAssertEqual(answer.allowed, role.map { $0 >= action.minimumRole } ?? false, "\(who) \(action)")
            }
        }
        // The documented table.
        XCTAssertEqual(
            TeamAction.allCases.map { "\($0.rawValue)=\($0.minimumRole.rawValue)" },
            [
                "view=member", "edit_content=member", "manage_content=admin", "invite=admin", "manage_members=admin",
                "rename=admin", "manage_settings=owner", "delete=owner", "transfer_ownership=owner",
            ])
        // Another tenant's user asking about this team, in their tenant: not found.
        await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
            try await w.accounts.teams.checkTeamPermission(
                tenant: w.globex, sessionToken: w.tokens[.foreign]!, teamID: w.team.id.rawValue, action: .view)
        }
        // Their session in this tenant: not valid.
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await w.accounts.teams.checkTeamPermission(
                tenant: w.acme, sessionToken: w.tokens[.foreign]!, teamID: w.team.id.rawValue, action: .view)
        }
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await w.accounts.teams.checkTeamPermission(
                tenant: w.acme, sessionToken: "not-a-token", teamID: w.team.id.rawValue, action: .view)
        }
        await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
            try await w.accounts.teams.checkTeamPermission(
                tenant: w.acme, sessionToken: w.tokens[.teamOwner]!, teamID: TeamID.random().rawValue, action: .view)
        }
    }

    /// A role change applies to the very next call.
    func testRoleChangesApplyOnTheNextCall() async throws {
        let w = try await TeamWorld.make()
        let admin = try await w.actor(.teamAdmin)
        _ = try await w.accounts.teams.renameTeam(tenant: w.acme, actor: admin, id: w.team.id.rawValue, name: "One")
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue,
            userID: w.user(.teamAdmin).id.rawValue, role: .member)
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.renameTeam(tenant: w.acme, actor: admin, id: w.team.id.rawValue, name: "Two")
        }
        let check = try await w.accounts.teams.checkTeamPermission(
            tenant: w.acme, sessionToken: w.tokens[.teamAdmin]!, teamID: w.team.id.rawValue, action: .rename)
        XCTAssertEqual(check.allowed, false)
        XCTAssertEqual(check.role, .member)
        // Removed: the team disappears for them.
        try await w.accounts.teams.removeTeamMember(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue,
            userID: w.user(.teamAdmin).id.rawValue)
        await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
            try await w.accounts.teams.team(tenant: w.acme, actor: admin, id: w.team.id.rawValue)
        }
    }

    func testListShowsOwnTeamsToMembersAndEveryTeamToTenantManagers() async throws {
        let w = try await TeamWorld.make()
        let other = try await w.accounts.teams.createTeam(
            tenant: w.acme, actor: try await w.actor(.outsider), name: "Outsiders")
        for who in [Who.teamMember, .teamAdmin] {
            let page = try await w.accounts.teams.listTeams(
                tenant: w.acme, actor: try await w.actor(who), pageSize: 0, pageToken: "")
            XCTAssertEqual(page.teams.map(\.team.name), ["Platform"], "\(who)")
        }
        let mine = try await w.accounts.teams.listTeams(
            tenant: w.acme, actor: try await w.actor(.outsider), pageSize: 0, pageToken: "")
        XCTAssertEqual(mine.teams.map(\.team.id), [other.team.id])
        XCTAssertEqual(mine.teams.map(\.role), [.owner])
        for who in [Who.tenantOwner, .tenantAdmin, .administrator] {
            let all = try await w.accounts.teams.listTeams(
                tenant: w.acme, actor: try await w.actor(who), pageSize: 0, pageToken: "")
            XCTAssertEqual(all.teams.map(\.team.name), ["Outsiders", "Platform"], "\(who)")
            XCTAssertEqual(all.teams.map(\.isMember), [false, false], "\(who)")
        }
        let admin = try await w.accounts.teams.listTeams(
            tenant: w.acme, actor: try await w.actor(.tenantAdmin), pageSize: 0, pageToken: "")
        XCTAssertEqual(admin.teams.map(\.role), [.admin, .admin])
        let foreign = try await w.accounts.teams.listTeams(
            tenant: w.globex, actor: try await w.actor(.foreign), pageSize: 0, pageToken: "")
        XCTAssertEqual(foreign.teams, [])
    }

    func testListPagesByNameThenID() async throws {
        let w = try await TeamWorld.make()
        let owner = try await w.actor(.teamOwner)
        for name in ["b", "a", "c", "a", "Z"] {
            _ = try await w.accounts.teams.createTeam(tenant: w.acme, actor: owner, name: name)
        }
        var names: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await w.accounts.teams.listTeams(tenant: w.acme, actor: owner, pageSize: 2, pageToken: token)
            names += page.teams.map(\.team.name)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 10
        XCTAssertEqual(names, ["Platform", "Z", "a", "a", "b", "c"])
        XCTAssertEqual(pages, 3)
        await assertDomainError(.invalidArgument, "PAGE_TOKEN_INVALID") {
            try await w.accounts.teams.listTeams(
                tenant: w.acme, actor: owner, pageSize: 2, pageToken: AccountService.encodePageToken("no-separator"))
        }
    }
}
