import Foundation
import XCTest

@testable import MoatCore

/// Regressions for holes a review found where teams, deletion and the event
/// stream meet.
final class ReviewRegressionTests: XCTestCase {
    typealias Who = TeamWorld.Who

    private func invite(_ w: TeamWorld, by who: Who = .teamOwner, _ email: String, role: TeamRole = .member)
        async throws -> (TeamInvitation, String)
    {
        let invitation = try await w.accounts.teams.invite(
            tenant: w.acme, actor: try await w.actor(who), teamID: w.team.id.rawValue, email: email, role: role)
        return (invitation, try XCTUnwrap(try w.world.lastInvitationToken(email: invitation.email)))
    }

    func testNoAccountIsCreatedThroughAnInvitationIntoATenantPendingDeletion() async throws {
        let w = try await TeamWorld.make()
        let (_, token) = try await invite(w, "newcomer@acme.test")
        _ = try await w.accounts.deletion.requestTenantDeletion(tenant: w.acme.slug, confirmation: "DELETE")
        // The handler's (possibly cached) tenant and the stored one both say so.
        for tenant in [w.acme, try await w.accounts.tenant(reference: w.acme.slug)] {
            await assertDomainError(.failedPrecondition, "TENANT_PENDING_DELETION") {
                try await w.accounts.teams.acceptInvitation(
                    tenant: tenant, token: token, sessionToken: "", password: "newcomer-pass-5531-ok")
            }
        }
        let created = try await w.world.store.read { try $0.user(tenant: w.acme.id, email: "newcomer@acme.test") }
        XCTAssertNil(created)
    }

    func testAnAdminCannotCancelAnOwnerInvitationByInvitingAgain() async throws {
        let w = try await TeamWorld.make()
        let (ownerInvitation, _) = try await invite(w, "boss@acme.test", role: .owner)
        await assertDomainError(.permissionDenied, "TEAM_ROLE_REQUIRED") {
            try await w.accounts.teams.invite(
                tenant: w.acme, actor: try await w.actor(.teamAdmin), teamID: w.team.id.rawValue,
                email: "boss@acme.test", role: .member)
        }
        let stored = try await w.world.store.read { try $0.teamInvitation(tenant: w.acme.id, id: ownerInvitation.id) }
        XCTAssertNil(stored?.revokedAt, "the owner's invitation still stands")
    }

    func testARemovedInviterCannotRejoinWithTheirOwnInvitation() async throws {
        let w = try await TeamWorld.make()
        let (_, token) = try await invite(w, by: .teamAdmin, "alt@acme.test", role: .admin)
        try await w.accounts.teams.removeTeamMember(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue,
            userID: w.user(.teamAdmin).id.rawValue)
        await assertDomainError(.unauthenticated, "INVITATION_INVALID") {
            try await w.accounts.teams.acceptInvitation(
                tenant: w.acme, token: token, sessionToken: "", password: "alt-pass-9917-ok")
        }
        let types = w.world.store.allEvents.map(\.type)
        XCTAssertTrue(types.contains("team.invitation_revoked"))
    }

    func testADemotedInviterLosesTheInvitationsTheirRoleNoLongerAllows() async throws {
        let w = try await TeamWorld.make()
        let (invitation, _) = try await invite(w, by: .teamAdmin, "alt@acme.test", role: .member)
        _ = try await w.accounts.teams.changeTeamRole(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue,
            userID: w.user(.teamAdmin).id.rawValue, role: .member)
        let stored = try await w.world.store.read { try $0.teamInvitation(tenant: w.acme.id, id: invitation.id) }
        XCTAssertNotNil(stored?.revokedAt, "a member may not invite, so their invitation goes")
    }

    func testTheOnlyOwnerOfATeamWithMembersCannotDeleteTheirAccount() async throws {
        let w = try await TeamWorld.make()
        let owner = w.user(.teamOwner)
        await assertDomainError(.failedPrecondition, "LAST_TEAM_OWNER") {
            try await w.accounts.deletion.requestAccountDeletion(
                tenant: w.acme, token: w.tokens[.teamOwner]!, confirmation: "DELETE",
                password: Fixture.memberPassword, code: "", client: Fixture.client)
        }
        let stored = try await w.world.storedUser(w.acme, owner.id)
        XCTAssertEqual(stored?.status, .active)
        // After handing ownership over, deletion goes ahead; the purge
        // announces the membership that goes with the account.
        try await w.accounts.teams.transferTeamOwnership(
            tenant: w.acme, actor: try await w.actor(.teamOwner), teamID: w.team.id.rawValue,
            userID: w.user(.teamAdmin).id.rawValue)
        _ = try await w.accounts.deletion.requestAccountDeletion(
            tenant: w.acme, token: w.tokens[.teamOwner]!, confirmation: "DELETE", password: Fixture.memberPassword,
            code: "", client: Fixture.client)
        w.world.clock.advance(seconds: 30 * 86400)
        let report = try await w.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual(report.accounts, 1)
        let removed = w.world.store.allEvents.filter { $0.type == "team.member_removed" && $0.subject == owner.id.rawValue }
        XCTAssertEqual(removed.count, 1)
        let members = try await w.world.store.read { try $0.teamMembers(tenant: w.acme.id, team: w.team.id) }
        XCTAssertTrue(members.contains { $0.role == .owner }, "the team keeps an owner")
    }

    func testAFilteredPollScansPastTheScanLimitWithoutWaiting() async throws {
        let world = try World()
        var configuration = EventStreamConfiguration()
        configuration.scanLimit = 5
        let stream = EventStream(
            store: world.store, signal: world.store.eventSignal, clock: world.clock, configuration: configuration)
        let tenant = TenantID.random()
        let user = UserID.random()
        for _ in 0..<12 {
            try await world.store.write { [now = world.clock.now()] in
                try $0.append(.userEnabled(userID: user, email: "e@x.test"), tenant: tenant, at: now)
            }
        }
        try await world.store.write { [now = world.clock.now()] in
            try $0.append(.passwordReset(userID: user, email: "e@x.test", revokedSessions: 0), tenant: tenant, at: now)
        }
        let started = ContinuousClock.now
        let batch = try await stream.poll(consumer: "mail", waitMilliseconds: 20_000, typePrefix: "password.")
        XCTAssertEqual(batch.events.map(\.type), ["password.reset"])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10), "answered without waiting for a new event")
    }
}
