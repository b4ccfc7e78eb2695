import XCTest

@testable import MoatCore

/// The last-owner rule, what admins may not do to owners, transfer, leave,
/// names, and the events and security-log lines of each change.
final class TeamMembershipTests: XCTestCase {
    typealias Who = TeamWorld.Who

    func testTheLastOwnerCannotLeaveBeDemotedOrRemoved() async throws {
        let w = try await TeamWorld.make()
        let team = w.team.id.rawValue
        let ownerID = w.user(.teamOwner).id.rawValue
        let before = w.world.store.allEvents.count
        await assertDomainError(.failedPrecondition, "LAST_OWNER") {
            try await w.accounts.teams.leaveTeam(tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team)
        }
        // Tenant owners and administrators act as owners, but do not count as
        // one: the team's only real owner stays.
        for who in [Who.teamOwner, .tenantOwner, .administrator] {
            await assertDomainError(.failedPrecondition, "LAST_OWNER") {
                try await w.accounts.teams.changeTeamRole(
                    tenant: w.acme, actor: try await w.actor(who), teamID: team, userID: ownerID, role: .admin)
            }
            await assertDomainError(.failedPrecondition, "LAST_OWNER") {
                try await w.accounts.teams.removeTeamMember(
                    tenant: w.acme, actor: try await w.actor(who), teamID: team, userID: ownerID)
            }
        }
        XCTAssertEqual(w.world.store.allEvents.count, before)
        let role = try await w.role(.teamOwner)
        XCTAssertEqual(role, .owner)

        // With a second owner, the first may go.
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team,
            userID: w.user(.teamAdmin).id.rawValue, role: .owner)
        try await w.accounts.teams.leaveTeam(tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team)
        let left = try await w.role(.teamOwner)
        XCTAssertNil(left)
        // Now the former admin is the last owner.
        await assertDomainError(.failedPrecondition, "LAST_OWNER") {
            try await w.accounts.teams.changeTeamRole(
                tenant: w.acme, actor: try await w.actor(.teamAdmin), teamID: team,
                userID: w.user(.teamAdmin).id.rawValue, role: .member)
        }
    }

    func testAnAdminCannotTouchOwners() async throws {
        let w = try await TeamWorld.make()
        let team = w.team.id.rawValue
        let admin = try await w.actor(.teamAdmin)
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team,
            userID: w.user(.teamMember).id.rawValue, role: .owner)
        let before = w.world.store.allEvents.count
        for target in [Who.teamOwner, .teamMember] {
            let id = w.user(target).id.rawValue
            await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
                try await w.accounts.teams.changeTeamRole(tenant: w.acme, actor: admin, teamID: team, userID: id, role: .admin)
            }
            await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
                try await w.accounts.teams.removeTeamMember(tenant: w.acme, actor: admin, teamID: team, userID: id)
            }
        }
        // Nor make one: not by promotion, not by invitation, not by transfer.
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team,
            userID: w.user(.teamMember).id.rawValue, role: .member)
        let afterReset = w.world.store.allEvents.count
        XCTAssertEqual(afterReset, before + 1)
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.changeTeamRole(
                tenant: w.acme, actor: admin, teamID: team, userID: w.user(.teamMember).id.rawValue, role: .owner)
        }
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.changeTeamRole(
                tenant: w.acme, actor: admin, teamID: team, userID: w.user(.teamAdmin).id.rawValue, role: .owner)
        }
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.invite(tenant: w.acme, actor: admin, teamID: team, email: "boss@acme.test", role: .owner)
        }
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.transferTeamOwnership(
                tenant: w.acme, actor: admin, teamID: team, userID: w.user(.teamMember).id.rawValue)
        }
        // An owner's invitation to OWNER is not the admin's to revoke.
        let invitation = try await w.accounts.teams.invite(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team, email: "boss@acme.test", role: .owner)
        let beforeRevoke = w.world.store.allEvents.count
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.revokeInvitation(tenant: w.acme, actor: admin, id: invitation.id.rawValue)
        }
        XCTAssertEqual(w.world.store.allEvents.count, beforeRevoke)
        // The admin still manages members and other admins.
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: admin, teamID: team, userID: w.user(.teamMember).id.rawValue, role: .admin)
        let promoted = try await w.role(.teamMember)
        XCTAssertEqual(promoted, .admin)
    }

    func testTransferOwnership() async throws {
        let w = try await TeamWorld.make()
        let team = w.team.id.rawValue
        let sequence = w.world.lastSequence
        try await w.accounts.teams.transferTeamOwnership(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: team, userID: w.user(.teamMember).id.rawValue)
        let newOwner = try await w.role(.teamMember)
        let previous = try await w.role(.teamOwner)
        XCTAssertEqual(newOwner, .owner)
        XCTAssertEqual(previous, .admin)
        let events = try w.world.events(after: sequence).map(\.event)
        XCTAssertEqual(
            events,
            [
                .teamOwnershipTransferred(
                    teamID: w.team.id, fromUserID: w.user(.teamOwner).id, toUserID: w.user(.teamMember).id,
                    actorID: w.user(.teamOwner).id)
            ])
        for who in [Who.teamMember, .teamOwner] {
            let log = try await w.world.securityLog(w.acme, w.user(who).id)
            XCTAssertEqual(log.last?.kind, .teamOwnershipTransferred, "\(who)")
        }
        // Not to a non-member, not to an owner, not to another tenant's user.
        for target in [w.user(.outsider).id, w.user(.foreign).id, UserID.random()] {
            await assertDomainError(.notFound, "MEMBER_NOT_FOUND") {
                try await w.accounts.teams.transferTeamOwnership(
                    tenant: w.acme, actor: try await w.actor(.teamMember), teamID: team, userID: target.rawValue)
            }
        }
        await assertDomainError(.failedPrecondition, "ALREADY_OWNER") {
            try await w.accounts.teams.transferTeamOwnership(
                tenant: w.acme, actor: try await w.actor(.teamMember), teamID: team,
                userID: w.user(.teamMember).id.rawValue)
        }
        // The former owner, now admin, can no longer delete.
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.deleteTeam(tenant: w.acme, actor: try await w.actor(.teamOwner), id: team)
        }
    }

    func testLeave() async throws {
        let w = try await TeamWorld.make()
        let team = w.team.id.rawValue
        let sequence = w.world.lastSequence
        try await w.accounts.teams.leaveTeam(tenant: w.acme, actor: try await w.actor(.teamMember), teamID: team)
        XCTAssertEqual(
            try w.world.events(after: sequence).map(\.event),
            [.teamMemberLeft(teamID: w.team.id, userID: w.user(.teamMember).id, role: .member)])
        let log = try await w.world.securityLog(w.acme, w.user(.teamMember).id)
        XCTAssertEqual(log.last?.kind, .teamLeft)
        await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
            try await w.accounts.teams.leaveTeam(tenant: w.acme, actor: try await w.actor(.teamMember), teamID: team)
        }
        // Tenant owners see the team but are not in it.
        await assertDomainError(.failedPrecondition, "NOT_A_MEMBER") {
            try await w.accounts.teams.leaveTeam(tenant: w.acme, actor: try await w.actor(.tenantOwner), teamID: team)
        }
        await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
            try await w.accounts.teams.leaveTeam(tenant: w.globex, actor: try await w.actor(.foreign), teamID: team)
        }
    }

    func testNames() async throws {
        let w = try await TeamWorld.make()
        let owner = try await w.actor(.teamOwner)
        for bad in ["", "   ", "\n\t", String(repeating: "x", count: 101), "tab\there", "bell\u{7}", "nul\u{0}"] {
            await assertDomainError(.invalidArgument, "TEAM_NAME_INVALID") {
                try await w.accounts.teams.createTeam(tenant: w.acme, actor: owner, name: bad)
            }
            await assertDomainError(.invalidArgument, "TEAM_NAME_INVALID") {
                try await w.accounts.teams.renameTeam(tenant: w.acme, actor: owner, id: w.team.id.rawValue, name: bad)
            }
        }
        let longest = String(repeating: "é", count: 100)
        let created = try await w.accounts.teams.createTeam(tenant: w.acme, actor: owner, name: "  \(longest)\n")
        XCTAssertEqual(created.team.name, longest)
        let renamed = try await w.accounts.teams.renameTeam(
            tenant: w.acme, actor: owner, id: created.team.id.rawValue, name: " Design 🎨 ")
        XCTAssertEqual(renamed.team.name, "Design 🎨")
        // Malformed and unknown ids are plain NOT_FOUND.
        for id in ["", "tm_", "us_" + String(repeating: "a", count: 26), TeamID.random().rawValue] {
            await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
                try await w.accounts.teams.team(tenant: w.acme, actor: owner, id: id)
            }
        }
    }

    func testCreateByAdministratorNamesTheOwner() async throws {
        let w = try await TeamWorld.make()
        await assertDomainError(.invalidArgument, "OWNER_REQUIRED") {
            try await w.accounts.teams.createTeam(tenant: w.acme, actor: .administrator, name: "Ops")
        }
        for missing in [w.user(.foreign).id.rawValue, UserID.random().rawValue, "nope"] {
            await assertDomainError(.notFound, "USER_NOT_FOUND") {
                try await w.accounts.teams.createTeam(tenant: w.acme, actor: .administrator, name: "Ops", ownerUserID: missing)
            }
        }
        let created = try await w.accounts.teams.createTeam(
            tenant: w.acme, actor: .administrator, name: "Ops", ownerUserID: w.user(.outsider).id.rawValue)
        XCTAssertEqual(created.role, .owner)
        XCTAssertFalse(created.isMember)
        let role = try await w.role(.outsider, in: created.team)
        XCTAssertEqual(role, .owner)
        // A user cannot make someone else the owner.
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await w.accounts.teams.createTeam(
                tenant: w.acme, actor: try await w.actor(.tenantOwner), name: "Ops",
                ownerUserID: w.user(.outsider).id.rawValue)
        }
    }

    /// Each change writes its event and a security-log line for the affected
    /// user, in the same transaction.
    func testEveryChangeEmitsItsEventAndLogLine() async throws {
        let w = try await TeamWorld.make()
        let owner = try await w.actor(.teamOwner)
        let ownerID = w.user(.teamOwner).id
        let memberID = w.user(.teamMember).id
        var sequence = w.world.lastSequence

        func expect(
            _ types: [String], log: [(Who, SecurityEventKind)], file: StaticString = #filePath, line: UInt = #line
        ) async throws {
            let events = try w.world.events(after: sequence)
            XCTAssertEqual(events.map(\.record.type), types, file: file, line: line)
            for (who, kind) in log {
                let entries = try await w.world.securityLog(w.acme, w.user(who).id)
                XCTAssertEqual(entries.last?.kind, kind, "\(who)", file: file, line: line)
            }
            sequence = w.world.lastSequence
        }

        let team = try await w.accounts.teams.createTeam(tenant: w.acme, actor: owner, name: "Events").team
        try await expect(["team.created"], log: [(.teamOwner, .teamCreated)])
        XCTAssertEqual(
            try w.world.events(after: sequence - 1).map(\.event),
            [.teamCreated(teamID: team.id, name: "Events", ownerID: ownerID, actorID: ownerID)])

        _ = try await w.accounts.teams.renameTeam(tenant: w.acme, actor: owner, id: team.id.rawValue, name: "Events 2")
        try await expect(["team.renamed"], log: [(.teamOwner, .teamRenamed)])
        _ = try await w.accounts.teams.renameTeam(tenant: w.acme, actor: owner, id: team.id.rawValue, name: "Events 2")
        try await expect([], log: [])

        let invitation = try await w.accounts.teams.invite(
            tenant: w.acme, actor: owner, teamID: team.id.rawValue, email: w.user(.teamMember).email, role: .member)
        try await expect(["team.invitation_created"], log: [(.teamOwner, .teamInvitationCreated)])
        try await w.accounts.teams.revokeInvitation(tenant: w.acme, actor: owner, id: invitation.id.rawValue)
        try await expect(["team.invitation_revoked"], log: [(.teamOwner, .teamInvitationRevoked)])

        _ = try await w.accounts.teams.invite(
            tenant: w.acme, actor: owner, teamID: team.id.rawValue, email: w.user(.teamMember).email, role: .member)
        let token = try XCTUnwrap(try w.world.lastInvitationToken(email: w.user(.teamMember).email))
        sequence = w.world.lastSequence
        _ = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: token, sessionToken: w.tokens[.teamMember]!, password: "")
        try await expect(["team.member_added"], log: [(.teamMember, .teamJoined)])

        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: owner, teamID: team.id.rawValue, userID: memberID.rawValue, role: .admin)
        XCTAssertEqual(
            try w.world.events(after: sequence).map(\.event),
            [
                .teamMemberRoleChanged(
                    teamID: team.id, userID: memberID, previousRole: .member, role: .admin, actorID: ownerID)
            ])
        try await expect(["team.member_role_changed"], log: [(.teamMember, .teamRoleChanged)])
        // Setting the role it has is no change.
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: owner, teamID: team.id.rawValue, userID: memberID.rawValue, role: .admin)
        try await expect([], log: [])

        try await w.accounts.teams.transferTeamOwnership(
            tenant: w.acme, actor: owner, teamID: team.id.rawValue, userID: memberID.rawValue)
        try await expect(
            ["team.ownership_transferred"], log: [(.teamMember, .teamOwnershipTransferred), (.teamOwner, .teamOwnershipTransferred)])

        let newOwner = try await w.actor(.teamMember)
        try await w.accounts.teams.removeTeamMember(
            tenant: w.acme, actor: newOwner, teamID: team.id.rawValue, userID: ownerID.rawValue)
        try await expect(["team.member_removed"], log: [(.teamOwner, .teamRemoved)])

        try await w.accounts.teams.deleteTeam(tenant: w.acme, actor: newOwner, id: team.id.rawValue)
        XCTAssertEqual(
            try w.world.events(after: sequence).map(\.event),
            [.teamDeleted(teamID: team.id, name: "Events 2", memberIDs: [memberID], actorID: memberID)])
        try await expect(["team.deleted"], log: [(.teamMember, .teamDeleted)])

        // Subjects: the team, the invitation, or the affected user.
        let subjects = Dictionary(
            try w.world.events().filter { $0.record.type.hasPrefix("team.") }.map { ($0.record.type, $0.record.subject) },
            uniquingKeysWith: { _, last in last })
        XCTAssertEqual(subjects["team.deleted"], team.id.rawValue)
        XCTAssertEqual(subjects["team.member_removed"], ownerID.rawValue)
        XCTAssertTrue(subjects["team.invitation_revoked"]?.hasPrefix("iv_") ?? false)
    }

    func testDeletingATeamDeletesMembershipsAndInvitations() async throws {
        let w = try await TeamWorld.make()
        let owner = try await w.actor(.teamOwner)
        let invitation = try await w.accounts.teams.invite(
            tenant: w.acme, actor: owner, teamID: w.team.id.rawValue, email: "later@acme.test", role: .member)
        let token = try XCTUnwrap(try w.world.lastInvitationToken(email: "later@acme.test"))
        try await w.accounts.teams.deleteTeam(tenant: w.acme, actor: owner, id: w.team.id.rawValue)
        let (members, stored) = try await w.world.store.read { reader in
            (
                try reader.teamMembers(tenant: w.acme.id, team: w.team.id),
                try reader.teamInvitation(tenant: w.acme.id, id: invitation.id)
            )
        }
        XCTAssertEqual(members, [])
        XCTAssertNil(stored)
        for who in [Who.teamOwner, .teamAdmin, .teamMember] {
            let log = try await w.world.securityLog(w.acme, w.user(who).id)
            XCTAssertEqual(log.last?.kind, .teamDeleted, "\(who)")
        }
        await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
            try await w.accounts.teams.acceptInvitation(
                tenant: w.acme, token: token, sessionToken: "", password: "later-pass-1234-ok")
        }
    }
}
