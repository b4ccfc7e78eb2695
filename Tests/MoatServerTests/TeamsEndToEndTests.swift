import Foundation
import MoatClient
import MoatCore
import XCTest

@testable import MoatServer

/// moat.v1.Teams over the socket: a slice of the role matrix, invitations
/// through the outbox, the account-creation path, other tenants, and the
/// wire statuses of the domain's refusals.
final class TeamsEndToEndTests: XCTestCase {
    func testTeamsOverTheSocket() async throws {
        let moat = try await AccountsFixture()
        do {
            try await run(moat)
        } catch {
            try await moat.stop()
            throw error
        }
        try await moat.stop()
    }

    private func run(_ moat: AccountsFixture) async throws {
        let acme = try await moat.createTenant("acme", owner: "owner@acme.test")
        _ = try await moat.createTenant("globex", owner: "owner@globex.test")
        let password = "member-pass-2209-ok"
        var ids: [String: String] = [:]
        for email in ["bob@acme.test", "carol@acme.test", "erin@acme.test"] {
            ids[email] = try await moat.client.users.create(
                .with {
                    $0.email = email
                    $0.password = password
                }, options: CallOptions(tenant: "acme")
            ).id
        }
        func session(_ tenant: String, _ email: String, _ password: String) async throws -> CallOptions {
            CallOptions(tenant: tenant, authorization: try await moat.signIn(tenant, email, password).sessionToken)
        }
        let bob = try await session("acme", "bob@acme.test", password)
        let carol = try await session("acme", "carol@acme.test", password)
        let erin = try await session("acme", "erin@acme.test", password)
        let owner = try await session("acme", "owner@acme.test", "correct horse battery")
        let globex = try await session("globex", "owner@globex.test", "correct horse battery")
        let teams = moat.client.teams

        // Create: the creator owns it; the administrator process must name an owner.
        let team = try await teams.create(.with { $0.name = "  Platform " }, options: bob)
        XCTAssertTrue(team.id.hasPrefix("tm_"))
        XCTAssertEqual(team.name, "Platform")
        XCTAssertEqual(team.tenantID, acme.tenant.id)
        XCTAssertEqual(team.callerRole, .owner)
        XCTAssertTrue(team.callerIsMember)
        await expectRPCError(.invalidArgument, "OWNER_REQUIRED") {
            _ = try await teams.create(.with { $0.name = "Ops" }, options: CallOptions(tenant: "acme"))
        }
        await expectRPCError(.invalidArgument, "TEAM_NAME_INVALID") {
            _ = try await teams.create(.with { $0.name = "bad\u{1}name" }, options: bob)
        }

        // Invite carol: the token travels only in the outbox.
        let invitation = try await teams.invite(
            .with {
                $0.teamID = team.id
                $0.email = "Carol@acme.test"
            }, options: bob)
        XCTAssertTrue(invitation.id.hasPrefix("iv_"))
        XCTAssertEqual(invitation.role, .member)
        XCTAssertEqual(invitation.invitedByUserID, ids["bob@acme.test"])
        let token = try await invitationToken(moat, email: "carol@acme.test")
        await expectRPCError(.invalidArgument, "TEAM_ROLE_INVALID") {
            _ = try await teams.invite(
                .with {
                    $0.teamID = team.id
                    $0.email = "x@acme.test"
                    $0.role = .UNRECOGNIZED(9)
                }, options: bob)
        }
        // Another tenant cannot use it, and learns nothing.
        await expectRPCError(.unauthenticated, "INVITATION_INVALID") {
            _ = try await teams.acceptInvitation(.with { $0.token = token }, options: globex)
        }
        await expectRPCError(.permissionDenied, "INVITATION_EMAIL_MISMATCH") {
            _ = try await teams.acceptInvitation(.with { $0.token = token }, options: erin)
        }
        let accepted = try await teams.acceptInvitation(.with { $0.token = token }, options: carol)
        XCTAssertEqual(accepted.role, .member)
        XCTAssertEqual(accepted.team.id, team.id)
        XCTAssertFalse(accepted.createdAccount)
        await expectRPCError(.unauthenticated, "INVITATION_INVALID") {
            _ = try await teams.acceptInvitation(.with { $0.token = token }, options: carol)
        }

        // A new person: the account is created by accepting.
        _ = try await teams.invite(
            .with {
                $0.teamID = team.id
                $0.email = "dave@acme.test"
                $0.role = .admin
            }, options: bob)
        let daveToken = try await invitationToken(moat, email: "dave@acme.test")
        await expectRPCError(.invalidArgument, "PASSWORD_TOO_SHORT") {
            _ = try await teams.acceptInvitation(
                .with {
                    $0.token = daveToken
                    $0.password = "short"
                }, options: CallOptions(tenant: "acme"))
        }
        let dave = try await teams.acceptInvitation(
            .with {
                $0.token = daveToken
                $0.password = "dave-pass-4471-ok"
            }, options: CallOptions(tenant: "acme"))
        XCTAssertTrue(dave.createdAccount)
        XCTAssertEqual(dave.role, .admin)
        let daveSession = try await session("acme", "dave@acme.test", "dave-pass-4471-ok")

        // The matrix, in brief.
        await expectRPCError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            _ = try await teams.rename(
                .with {
                    $0.teamID = team.id
                    $0.name = "Nope"
                }, options: carol)
        }
        let renamed = try await teams.rename(
            .with {
                $0.teamID = team.id
                $0.name = "Platform Core"
            }, options: daveSession)
        XCTAssertEqual(renamed.callerRole, .admin)
        await expectRPCError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            _ = try await teams.delete(.with { $0.teamID = team.id }, options: daveSession)
        }
        await expectRPCError(.notFound, "TEAM_NOT_FOUND") {
            _ = try await teams.get(.with { $0.teamID = team.id }, options: erin)
        }
        await expectRPCError(.notFound, "TEAM_NOT_FOUND") {
            _ = try await teams.get(.with { $0.teamID = team.id }, options: globex)
        }
        await expectRPCError(.unauthenticated, "SESSION_INVALID") {
            _ = try await teams.get(
                .with { $0.teamID = team.id },
                options: CallOptions(tenant: "acme", authorization: globex.authorization))
        }
        let seenByOwner = try await teams.get(.with { $0.teamID = team.id }, options: owner)
        XCTAssertEqual(seenByOwner.callerRole, .owner)
        XCTAssertFalse(seenByOwner.callerIsMember)
        let listedByAdministrator = try await teams.list(options: CallOptions(tenant: "acme"))
        XCTAssertEqual(listedByAdministrator.teams.map(\.name), ["Platform Core"])
        let listedByErin = try await teams.list(options: erin)
        XCTAssertEqual(listedByErin.teams, [])

        // CheckPermission: one table with the methods.
        let view = try await teams.checkPermission(
            .with {
                $0.teamID = team.id
                $0.action = .view
            }, options: carol)
        XCTAssertTrue(view.allowed)
        XCTAssertEqual(view.role, .member)
        let delete = try await teams.checkPermission(
            .with {
                $0.teamID = team.id
                $0.action = .delete
            }, options: carol)
        XCTAssertFalse(delete.allowed)
        let outsider = try await teams.checkPermission(
            .with {
                $0.teamID = team.id
                $0.action = .view
            }, options: erin)
        XCTAssertFalse(outsider.allowed)
        XCTAssertEqual(outsider.role, .unspecified)
        await expectRPCError(.invalidArgument, "TEAM_ACTION_INVALID") {
            _ = try await teams.checkPermission(.with { $0.teamID = team.id }, options: carol)
        }
        await expectRPCError(.notFound, "TEAM_NOT_FOUND") {
            _ = try await teams.checkPermission(
                .with {
                    $0.teamID = team.id
                    $0.action = .view
                }, options: globex)
        }
        await expectRPCError(.unauthenticated, "SESSION_REQUIRED") {
            _ = try await teams.checkPermission(
                .with {
                    $0.teamID = team.id
                    $0.action = .view
                }, options: CallOptions(tenant: "acme"))
        }

        // The last owner; transfer; members.
        await expectRPCError(.failedPrecondition, "LAST_OWNER") {
            _ = try await teams.leave(.with { $0.teamID = team.id }, options: bob)
        }
        await expectRPCError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            _ = try await teams.removeMember(
                .with {
                    $0.teamID = team.id
                    $0.userID = ids["bob@acme.test"]!
                }, options: daveSession)
        }
        _ = try await teams.transferOwnership(
            .with {
                $0.teamID = team.id
                $0.userID = ids["carol@acme.test"]!
            }, options: bob)
        let members = try await teams.listMembers(.with { $0.teamID = team.id }, options: carol)
        XCTAssertEqual(members.members.map(\.email), ["bob@acme.test", "carol@acme.test", "dave@acme.test"])
        XCTAssertEqual(members.members.map(\.role), [.admin, .owner, .admin])
        let demoted = try await teams.changeRole(
            .with {
                $0.teamID = team.id
                $0.userID = ids["bob@acme.test"]!
                $0.role = .member
            }, options: carol)
        XCTAssertEqual(demoted.role, .member)
        XCTAssertEqual(demoted.email, "bob@acme.test")
        _ = try await teams.leave(.with { $0.teamID = team.id }, options: bob)

        // Pending invitations; revoke.
        let pending = try await teams.invite(
            .with {
                $0.teamID = team.id
                $0.email = "frank@acme.test"
            }, options: carol)
        let listed = try await teams.listInvitations(.with { $0.teamID = team.id }, options: daveSession)
        XCTAssertEqual(listed.invitations.map(\.id), [pending.id])
        _ = try await teams.revokeInvitation(.with { $0.invitationID = pending.id }, options: daveSession)
        await expectRPCError(.notFound, "INVITATION_NOT_FOUND") {
            _ = try await teams.revokeInvitation(.with { $0.invitationID = pending.id }, options: daveSession)
        }

        // Delete, then it is gone.
        _ = try await teams.delete(.with { $0.teamID = team.id }, options: carol)
        await expectRPCError(.notFound, "TEAM_NOT_FOUND") {
            _ = try await teams.get(.with { $0.teamID = team.id }, options: carol)
        }

        // The outbox: every change, protobuf payloads, tokens only where due.
        let events = try await moat.events().filter { $0.type.hasPrefix("team.") }
        XCTAssertEqual(
            events.map(\.type),
            [
                "team.created", "team.invitation_created", "team.member_added", "team.invitation_created",
                "team.member_added", "team.renamed", "team.ownership_transferred", "team.member_role_changed",
                "team.member_left", "team.invitation_created", "team.invitation_revoked", "team.deleted",
            ])
        let all = try await moat.events()
        for secret in [token, daveToken] {
            let carrying = all.filter { $0.payload.count >= secret.utf8.count && Data($0.payload).range(of: Data(secret.utf8)) != nil }
            XCTAssertEqual(carrying.map(\.type), ["team.invitation_created"])
        }
        let transferred = try Moat_V1_TeamOwnershipTransferred(
            serializedBytes: try XCTUnwrap(events.first { $0.type == "team.ownership_transferred" }).payload)
        XCTAssertEqual(transferred.fromUserID, ids["bob@acme.test"])
        XCTAssertEqual(transferred.toUserID, ids["carol@acme.test"])
        let deleted = try Moat_V1_TeamDeleted(serializedBytes: try XCTUnwrap(events.last).payload)
        XCTAssertEqual(Set(deleted.memberUserIds), [ids["carol@acme.test"]!, dave.userID])
        let left = try Moat_V1_TeamMemberRemoved(
            serializedBytes: try XCTUnwrap(events.first { $0.type == "team.member_left" }).payload)
        XCTAssertEqual(left.userID, ids["bob@acme.test"])
        XCTAssertEqual(left.role, "member")
    }

    private func invitationToken(_ moat: AccountsFixture, email: String) async throws -> String {
        let events = try await moat.events()
        for record in events.reversed() where record.type == "team.invitation_created" {
            let payload = try Moat_V1_TeamInvitationCreated(serializedBytes: record.payload)
            if payload.email == email {
                XCTAssertEqual(payload.expiresAtUnix - record.createdAt.seconds, 7 * 86_400)
                XCTAssertFalse(payload.teamName.isEmpty)
                return payload.token
            }
        }
        XCTFail("no team.invitation_created for \(email)")
        throw CancellationError()
    }
}
