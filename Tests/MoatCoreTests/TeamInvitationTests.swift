import Foundation
import XCTest

@testable import MoatCore

/// Invitations: expiry, single use under concurrency, revocation,
/// replacement, the invited email, account creation, other tenants, and
/// where the token may appear.
final class TeamInvitationTests: XCTestCase {
    typealias Who = TeamWorld.Who

    /// The team owner invites `email`; returns the invitation and its token.
    func invite(_ w: TeamWorld, _ email: String, role: TeamRole = .member) async throws -> (TeamInvitation, String) {
        let invitation = try await w.accounts.teams.invite(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue, email: email, role: role)
        return (invitation, try XCTUnwrap(try w.world.lastInvitationToken(email: invitation.email)))
    }

    func testInvitationExpiresAfterSevenDays() async throws {
        let w = try await TeamWorld.make()
        let (invitation, token) = try await invite(w, w.user(.outsider).email)
        XCTAssertEqual(invitation.expiresAt, invitation.createdAt.adding(seconds: 7 * 86_400))
        w.world.clock.advance(seconds: 7 * 86_400 - 1)
        let listed = try await w.accounts.teams.listInvitations(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue)
        XCTAssertEqual(listed.map(\.id), [invitation.id])
        w.world.clock.advance(seconds: 1)
        // The session itself is still fresh (idle timeout 14 days).
        let before = try await w.world.snapshot()
        await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
            try await w.accounts.teams.acceptInvitation(
                tenant: w.acme, token: token, sessionToken: w.tokens[.outsider]!, password: "")
        }
        try await assertUnchanged(w.world, since: before)
        let after = try await w.accounts.teams.listInvitations(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue)
        XCTAssertEqual(after, [], "expired invitations are not pending")
        await assertDomainError(.notFound, "INVITATION_NOT_FOUND") {
            try await w.accounts.teams.revokeInvitation(
                tenant: w.acme, actor: try await w.actor(.teamOwner), id: invitation.id.rawValue)
        }
    }

    func testAcceptWithSessionIsSingleUse() async throws {
        let w = try await TeamWorld.make()
        let (invitation, token) = try await invite(w, w.user(.outsider).email, role: .admin)
        let accepted = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: token, sessionToken: w.tokens[.outsider]!, password: "")
        XCTAssertEqual(accepted.member.role, .admin)
        XCTAssertEqual(accepted.team.id, w.team.id)
        XCTAssertFalse(accepted.createdAccount)
        let role = try await w.role(.outsider)
        XCTAssertEqual(role, .admin)
        let stored = try await w.world.store.read { try $0.teamInvitation(tenant: w.acme.id, id: invitation.id) }
        XCTAssertEqual(stored?.acceptedBy, w.user(.outsider).id)
        // Used: the same answer as any bad token, for anyone.
        for (session, password) in [(w.tokens[.outsider]!, ""), ("", "another-pass-4412-ok")] {
            await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
                try await w.accounts.teams.acceptInvitation(tenant: w.acme, token: token, sessionToken: session, password: password)
            }
        }
        for bad in ["", "x", String(repeating: "A", count: 43), String(repeating: "A", count: 10_000)] {
            await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
                try await w.accounts.teams.acceptInvitation(
                    tenant: w.acme, token: bad, sessionToken: w.tokens[.outsider]!, password: "")
            }
        }
    }

    func testConcurrentAcceptsExactlyOneWins() async throws {
        for round in 0..<20 {
            let w = try await TeamWorld.make()
            let (_, token) = try await invite(w, w.user(.outsider).email)
            let session = w.tokens[.outsider]!
            let accounts = w.accounts
            let tenant = w.acme
            let outcomes = await withTaskGroup(of: Outcome.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        await Outcome.of {
                            _ = try await accounts.teams.acceptInvitation(
                                tenant: tenant, token: token, sessionToken: session, password: "")
                        }
                    }
                }
                var all: [Outcome] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            XCTAssertEqual(outcomes.filter { $0 == .ok }.count, 1, "round \(round): \(outcomes)")
            XCTAssertEqual(
                outcomes.filter { $0 == .failed(.unauthenticated, "INVITATION_INVALID") }.count, 3,
                "round \(round): \(outcomes)")
            XCTAssertEqual(try w.world.events().filter { $0.record.type == "team.member_added" }.count, 3)
        }
    }

    func testConcurrentAccountCreationsExactlyOneWins() async throws {
        let w = try await TeamWorld.make()
        let (_, token) = try await invite(w, "fresh@acme.test")
        let accounts = w.accounts
        let tenant = w.acme
        let outcomes = await withTaskGroup(of: Outcome.self) { group in
            for index in 0..<3 {
                group.addTask {
                    await Outcome.of {
                        _ = try await accounts.teams.acceptInvitation(
                            tenant: tenant, token: token, sessionToken: "", password: "fresh-pass-77\(index)-ok")
                    }
                }
            }
            var all: [Outcome] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        XCTAssertEqual(outcomes.filter { $0 == .ok }.count, 1, "\(outcomes)")
        let users = try await w.world.store.read { try $0.users(tenant: w.acme.id, afterEmail: nil, limit: 100) }
        XCTAssertEqual(users.filter { $0.email == "fresh@acme.test" }.count, 1)
    }

    func testRevokedInvitationCannotBeAccepted() async throws {
        let w = try await TeamWorld.make()
        let (invitation, token) = try await invite(w, w.user(.outsider).email)
        try await w.accounts.teams.revokeInvitation(
            tenant: w.acme, actor: try await w.actor(.teamAdmin), id: invitation.id.rawValue)
        await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
            try await w.accounts.teams.acceptInvitation(
                tenant: w.acme, token: token, sessionToken: w.tokens[.outsider]!, password: "")
        }
        await assertDomainError(.notFound, "INVITATION_NOT_FOUND") {
            try await w.accounts.teams.revokeInvitation(
                tenant: w.acme, actor: try await w.actor(.teamOwner), id: invitation.id.rawValue)
        }
        let role = try await w.role(.outsider)
        XCTAssertNil(role)
    }

    func testReinvitingReplacesTheEarlierInvitation() async throws {
        let w = try await TeamWorld.make()
        let (first, firstToken) = try await invite(w, w.user(.outsider).email)
        let sequence = w.world.lastSequence
        let (second, secondToken) = try await invite(w, "  OUTSIDER@acme.test ", role: .admin)
        XCTAssertNotEqual(firstToken, secondToken)
        XCTAssertEqual(second.email, w.user(.outsider).email)
        let events = try w.world.events(after: sequence).map(\.record.type)
        XCTAssertEqual(events, ["team.invitation_revoked", "team.invitation_created"])
        if case .teamInvitationRevoked(let id, _, _, let reason, _) = try w.world.events(after: sequence)[0].event {
            XCTAssertEqual(id, first.id)
            XCTAssertEqual(reason, "replaced")
        } else {
            XCTFail("expected team.invitation_revoked")
        }
        let listed = try await w.accounts.teams.listInvitations(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue)
        XCTAssertEqual(listed.map(\.id), [second.id])
        await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
            try await w.accounts.teams.acceptInvitation(
                tenant: w.acme, token: firstToken, sessionToken: w.tokens[.outsider]!, password: "")
        }
        let accepted = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: secondToken, sessionToken: w.tokens[.outsider]!, password: "")
        XCTAssertEqual(accepted.member.role, .admin)
        // Another email's invitation is not replaced.
        _ = try await invite(w, "a@acme.test")
        _ = try await invite(w, "b@acme.test")
        let both = try await w.accounts.teams.listInvitations(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue)
        XCTAssertEqual(Set(both.map(\.email)), ["a@acme.test", "b@acme.test"])
    }

    func testAcceptingWithAnotherUsersSessionIsRefused() async throws {
        let w = try await TeamWorld.make()
        let (invitation, token) = try await invite(w, w.user(.outsider).email)
        let before = try await w.world.snapshot()
        // Another tenant member; the tenant's own owner.
        for who in [Who.tenantAdmin, .tenantOwner] {
            await assertDomainError(.permissionDenied, "INVITATION_EMAIL_MISMATCH") {
                try await w.accounts.teams.acceptInvitation(tenant: w.acme, token: token, sessionToken: w.tokens[who]!, password: "")
            }
        }
        await assertDomainError(.unauthenticated, "SESSION_INVALID") {
            try await w.accounts.teams.acceptInvitation(tenant: w.acme, token: token, sessionToken: "garbage", password: "")
        }
        try await assertUnchanged(w.world, since: before)
        // Still pending for the right person.
        let stored = try await w.world.store.read { try $0.teamInvitation(tenant: w.acme.id, id: invitation.id) }
        XCTAssertEqual(stored?.isOpen, true)
        _ = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: token, sessionToken: w.tokens[.outsider]!, password: "")
    }

    func testAcceptingAsAMemberAlreadyIsRefusedWithoutSpendingIt() async throws {
        let w = try await TeamWorld.make()
        await assertDomainError(.alreadyExists, "ALREADY_MEMBER") {
            try await w.accounts.teams.invite(
                tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue,
                email: w.user(.teamMember).email, role: .admin)
        }
    }

    func testAcceptingWithoutSessionCreatesTheAccount() async throws {
        let w = try await TeamWorld.make()
        let tenant = try await w.world.setPolicy(w.acme) { $0.minPasswordLength = 12 }
        let (invitation, token) = try await invite(w, "newcomer@acme.test", role: .admin)
        let before = try await w.world.snapshot()
        await assertDomainError(.invalidArgument, "PASSWORD_REQUIRED") {
            try await w.accounts.teams.acceptInvitation(tenant: tenant, token: token, sessionToken: "", password: "")
        }
        await assertDomainError(.invalidArgument, "PASSWORD_TOO_SHORT") {
            try await w.accounts.teams.acceptInvitation(tenant: tenant, token: token, sessionToken: "", password: "short-9x")
        }
        await assertDomainError(.invalidArgument, "PASSWORD_TOO_COMMON") {
            try await w.accounts.teams.acceptInvitation(tenant: tenant, token: token, sessionToken: "", password: "password1234")
        }
        await assertDomainError(.invalidArgument, "PASSWORD_IS_EMAIL") {
            try await w.accounts.teams.acceptInvitation(
                tenant: tenant, token: token, sessionToken: "", password: "newcomer@acme.test")
        }
        try await assertUnchanged(w.world, since: before, "refused passwords spend nothing")

        let sequence = w.world.lastSequence
        let accepted = try await w.accounts.teams.acceptInvitation(
            tenant: tenant, token: token, sessionToken: "", password: "newcomer-pass-3391")
        XCTAssertTrue(accepted.createdAccount)
        XCTAssertEqual(accepted.member.role, .admin)
        let user = try await w.world.store.read { try $0.user(tenant: w.acme.id, email: "newcomer@acme.test") }
        XCTAssertEqual(user?.role, .member, "tenant role member, whatever the team role")
        XCTAssertEqual(user?.id, accepted.member.userID)
        let events = try w.world.events(after: sequence).map(\.event)
        XCTAssertEqual(
            events,
            [
                .userCreated(userID: accepted.member.userID, email: "newcomer@acme.test", role: .member),
                .teamMemberAdded(
                    teamID: w.team.id, userID: accepted.member.userID, email: "newcomer@acme.test", role: .admin,
                    invitationID: invitation.id),
            ])
        let log = try await w.world.securityLog(w.acme, accepted.member.userID)
        XCTAssertEqual(log.map(\.kind), [.teamJoined])
        // The account signs in with that password, and is in the team.
        let session = try await w.world.signIn(tenant, "newcomer@acme.test", "newcomer-pass-3391")
        let check = try await w.accounts.teams.checkTeamPermission(
            tenant: tenant, sessionToken: session.token, teamID: w.team.id.rawValue, action: .invite)
        XCTAssertEqual(check.allowed, true)
        XCTAssertEqual(check.role, .admin)
    }

    func testAcceptingWithoutSessionForAnExistingAccountIsEmailTaken() async throws {
        let w = try await TeamWorld.make()
        let (_, token) = try await invite(w, w.user(.outsider).email)
        let before = try await w.world.snapshot()
        await assertDomainError(.alreadyExists, "EMAIL_TAKEN") {
            try await w.accounts.teams.acceptInvitation(
                tenant: w.acme, token: token, sessionToken: "", password: "whatever-pass-2291")
        }
        try await assertUnchanged(w.world, since: before)
        // Signing in and accepting with the session works.
        _ = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: token, sessionToken: w.tokens[.outsider]!, password: "")
    }

    func testTokensDoNotCrossTenants() async throws {
        let w = try await TeamWorld.make()
        let (invitation, token) = try await invite(w, w.user(.foreign).email)
        let before = try await w.world.snapshot()
        // In globex the acme token is unknown: the same answer as garbage.
        for (session, password) in [(w.tokens[.foreign]!, ""), ("", "globex-pass-8812-ok")] {
            let crossed = await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
                try await w.accounts.teams.acceptInvitation(tenant: w.globex, token: token, sessionToken: session, password: password)
            }
            let unknown = await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
                try await w.accounts.teams.acceptInvitation(
                    tenant: w.globex, token: OpaqueToken.make(), sessionToken: session, password: password)
            }
            XCTAssertEqual(crossed, unknown, "no hint that the token exists elsewhere")
        }
        // Nor can globex see or revoke it.
        await assertDomainError(.notFound, "INVITATION_NOT_FOUND") {
            try await w.accounts.teams.revokeInvitation(tenant: w.globex, actor: .administrator, id: invitation.id.rawValue)
        }
        await assertDomainError(.notFound, "TEAM_NOT_FOUND") {
            try await w.accounts.teams.listInvitations(tenant: w.globex, actor: .administrator, teamID: w.team.id.rawValue)
        }
        try await assertUnchanged(w.world, since: before)
    }

    /// The token is in exactly one place: the `team.invitation_created`
    /// payload. Not in other events, the security log, the returned
    /// invitation or the store (which keeps only its SHA-256).
    func testTheTokenAppearsOnlyInTheCreatedEvent() async throws {
        let w = try await TeamWorld.make()
        let (invitation, token) = try await invite(w, w.user(.outsider).email)
        let (_, second) = try await invite(w, w.user(.outsider).email)
        _ = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: second, sessionToken: w.tokens[.outsider]!, password: "")
        for candidate in [token, second] {
            let carrying = w.world.store.allEvents.filter {
                String(decoding: $0.payload, as: UTF8.self).contains(candidate)
            }
            XCTAssertEqual(carrying.map(\.type), ["team.invitation_created"])
            XCTAssertFalse(w.world.store.allSecurityLog.contains { $0.detail.contains(candidate) })
        }
        XCTAssertFalse("\(invitation)".contains(token))
        XCTAssertEqual(invitation.tokenHash, OpaqueToken.hash(token))
        let stored = try await w.world.store.read { try $0.teamInvitation(tenant: w.acme.id, id: invitation.id) }
        XCTAssertEqual(stored?.tokenHash, OpaqueToken.hash(token))
        // Who the mail goes to, from whom.
        let created = try w.world.events().compactMap { item -> DomainEvent? in
            if case .teamInvitationCreated(let id, _, _, _, _, _, _, _, _) = item.event, id == invitation.id {
                return item.event
            }
            return nil
        }.first
        XCTAssertEqual(
            created,
            .teamInvitationCreated(
                invitationID: invitation.id, teamID: w.team.id, teamName: "Platform", email: w.user(.outsider).email,
                role: .member, token: token, expiresAt: invitation.expiresAt, inviterID: w.user(.teamOwner).id,
                inviterEmail: w.user(.teamOwner).email))
    }

    func testAdministratorInvitationsHaveNoInviter() async throws {
        let w = try await TeamWorld.make()
        let invitation = try await w.accounts.teams.invite(
            tenant: w.acme, actor: .administrator, teamID: w.team.id.rawValue, email: "ops@acme.test", role: .owner)
        XCTAssertNil(invitation.invitedBy)
        let token = try XCTUnwrap(try w.world.lastInvitationToken(email: "ops@acme.test"))
        let accepted = try await w.accounts.teams.acceptInvitation(
            tenant: w.acme, token: token, sessionToken: "", password: "ops-pass-5520-ok")
        XCTAssertEqual(accepted.member.role, .owner)
    }
}
