import Foundation
import XCTest

@testable import MoatCore

/// `securityLog`: who may read whose log, paging, tenant isolation.
final class SecurityLogTests: XCTestCase {
    static let memberEmail = "member@acme.test"
    static let otherEmail = "other@acme.test"

    func testAUserReadsTheirOwnLogNewestFirstInPages() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: Self.memberEmail)
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Self.memberEmail, "wrong-password-123")
        }
        world.clock.advance(seconds: 10)
        let signedIn = try await world.signIn(tenant, Self.memberEmail, Fixture.memberPassword)
        let actor = try await world.actor(tenant, token: signedIn.token)

        let all = try await world.accounts.users.securityLog(
            tenant: tenant, actor: actor, userID: "", pageSize: 0, pageToken: "")
        XCTAssertEqual(all.entries.map(\.kind), [.signInSucceeded, .signInFailed])
        XCTAssertTrue(all.entries.allSatisfy { $0.userID == member.id && $0.tenantID == tenant.id })
        XCTAssertEqual(all.entries.first?.userAgent, Fixture.client.userAgent)
        XCTAssertEqual(all.entries.first?.ip, Fixture.client.ip)
        XCTAssertEqual(all.nextPageToken, "")

        let first = try await world.accounts.users.securityLog(
            tenant: tenant, actor: actor, userID: member.id.rawValue, pageSize: 1, pageToken: "")
        XCTAssertEqual(first.entries.map(\.kind), [.signInSucceeded])
        XCTAssertFalse(first.nextPageToken.isEmpty)
        let second = try await world.accounts.users.securityLog(
            tenant: tenant, actor: actor, userID: "", pageSize: 1, pageToken: first.nextPageToken)
        XCTAssertEqual(second.entries.map(\.kind), [.signInFailed])
        XCTAssertEqual(second.nextPageToken, "")

        await assertDomainError(.invalidArgument, "PAGE_TOKEN_INVALID") {
            try await world.accounts.users.securityLog(tenant: tenant, actor: actor, userID: "", pageSize: 1, pageToken: "%%")
        }
        await assertDomainError(.invalidArgument, "PAGE_TOKEN_INVALID") {
            try await world.accounts.users.securityLog(
                tenant: tenant, actor: actor, userID: "", pageSize: 1,
                pageToken: Data("not-a-number".utf8).base64EncodedString())
        }
        await assertDomainError(.invalidArgument, "PAGE_SIZE_INVALID") {
            try await world.accounts.users.securityLog(tenant: tenant, actor: actor, userID: "", pageSize: 501, pageToken: "")
        }
    }

    func testOwnersAdminsAndAdministratorsReadAnyMembersLogMembersDoNot() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        let member = try await world.makeUser(tenant, email: Self.memberEmail)
        try await world.makeUser(tenant, email: "admin@acme.test", password: Fixture.adminPassword, role: .admin)
        let other = try await world.makeUser(tenant, email: Self.otherEmail)
        _ = try await world.signIn(tenant, Self.otherEmail, Fixture.memberPassword)

        let ownerActor = try await world.actor(
            tenant, token: try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword).token)
        let adminActor = try await world.actor(
            tenant, token: try await world.signIn(tenant, "admin@acme.test", Fixture.adminPassword).token)
        let memberActor = try await world.actor(
            tenant, token: try await world.signIn(tenant, Self.memberEmail, Fixture.memberPassword).token)

        for actor in [ownerActor, adminActor, Principal.administrator] {
            let page = try await world.accounts.users.securityLog(
                tenant: tenant, actor: actor, userID: other.id.rawValue, pageSize: 10, pageToken: "")
            XCTAssertEqual(page.entries.map(\.kind), [.signInSucceeded])
            XCTAssertEqual(page.entries.first?.userID, other.id)
        }
        // A member may not read someone else's, existing or not.
        for target in [other.id.rawValue, owner.id.rawValue, UserID.random().rawValue, "garbage"] {
            await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
                try await world.accounts.users.securityLog(
                    tenant: tenant, actor: memberActor, userID: target, pageSize: 10, pageToken: "")
            }
        }
        let own = try await world.accounts.users.securityLog(
            tenant: tenant, actor: memberActor, userID: member.id.rawValue, pageSize: 10, pageToken: "")
        XCTAssertEqual(own.entries.map(\.kind), [.signInSucceeded])
        // An administrator caller must name the user.
        await assertDomainError(.invalidArgument, "USER_ID_REQUIRED") {
            try await world.accounts.users.securityLog(
                tenant: tenant, actor: .administrator, userID: "", pageSize: 10, pageToken: "")
        }
        for target in [UserID.random().rawValue, "garbage"] {
            await assertDomainError(.notFound, "USER_NOT_FOUND") {
                try await world.accounts.users.securityLog(
                    tenant: tenant, actor: ownerActor, userID: target, pageSize: 10, pageToken: "")
            }
        }
    }

    func testAnotherTenantsUserIsNotFound() async throws {
        let world = try World()
        let (acme, _) = try await world.makeTenant()
        let (globex, globexOwner) = try await world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        _ = try await world.signIn(globex, "owner@globex.test", Fixture.ownerPassword)
        let acmeOwner = try await world.actor(
            acme, token: try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword).token)
        for actor in [acmeOwner, Principal.administrator] {
            await assertDomainError(.notFound, "USER_NOT_FOUND") {
                try await world.accounts.users.securityLog(
                    tenant: acme, actor: actor, userID: globexOwner.id.rawValue, pageSize: 10, pageToken: "")
            }
        }
        // A globex session presented to acme does not authenticate at all.
        let globexToken = try await world.signIn(globex, "owner@globex.test", Fixture.ownerPassword).token
        await assertDomainError(.unauthenticated, "SESSION_INVALID") { try await world.actor(acme, token: globexToken) }
        // And a globex actor acting on acme is refused.
        let globexActor = try await world.actor(globex, token: globexToken)
        await assertDomainError(.permissionDenied, "ROLE_REQUIRED") {
            try await world.accounts.users.securityLog(
                tenant: acme, actor: globexActor, userID: "", pageSize: 10, pageToken: "")
        }
    }
}
