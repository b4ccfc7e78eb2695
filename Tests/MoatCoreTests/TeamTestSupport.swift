import XCTest

@testable import MoatCore

/// A tenant "acme" with users in every position relative to one team, and a
/// second tenant "globex" with its own owner.
///
/// The team (`team`) is created by `teamOwner`; `teamAdmin` and
/// `teamMember` are added through invitations. `outsider` is a tenant member
/// who is not in the team; `tenantOwner` and `tenantAdmin` are not in it
/// either but act through their tenant roles.
struct TeamWorld {
    enum Who: String, CaseIterable, CustomStringConvertible {
        case teamOwner, teamAdmin, teamMember, outsider, tenantOwner, tenantAdmin, foreign, administrator
        var description: String { rawValue }
    }

    static let emails: [Who: String] = [
        .teamOwner: "towner@acme.test", .teamAdmin: "tadmin@acme.test", .teamMember: "tmember@acme.test",
        .outsider: "outsider@acme.test", .tenantOwner: Fixture.ownerEmail, .tenantAdmin: "admin@acme.test",
        .foreign: "owner@globex.test",
    ]

    let world: World
    let acme: Tenant
    let globex: Tenant
    let team: Team
    let users: [Who: User]
    let tokens: [Who: String]

    var accounts: AccountService { world.accounts }

    static func make(world existing: World? = nil) async throws -> TeamWorld {
        let world = try existing ?? World()
        let (acme, tenantOwner) = try await world.makeTenant()
        let (globex, foreign) = try await world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        var users: [Who: User] = [.tenantOwner: tenantOwner, .foreign: foreign]
        for who in [Who.teamOwner, .teamAdmin, .teamMember, .outsider] {
            users[who] = try await world.makeUser(acme, email: emails[who]!)
        }
        users[.tenantAdmin] = try await world.makeUser(acme, email: emails[.tenantAdmin]!, role: .admin)
        var tokens: [Who: String] = [:]
        for (who, user) in users {
            let tenant = who == .foreign ? globex : acme
            let password =
                switch who {
                case .tenantOwner, .foreign: Fixture.ownerPassword
                default: Fixture.memberPassword
                }
            tokens[who] = try await world.signIn(tenant, user.email, password).token
        }
        let ownerActor = try await world.actor(acme, token: tokens[.teamOwner]!)
        let access = try await world.accounts.teams.createTeam(tenant: acme, actor: ownerActor, name: "Platform")
        let partial = TeamWorld(
            world: world, acme: acme, globex: globex, team: access.team, users: users, tokens: tokens)
        try await partial.addByInvitation(.teamAdmin, role: .admin)
        try await partial.addByInvitation(.teamMember, role: .member)
        return partial
    }

    /// The actor for `who` in the tenant they call (globex for `foreign`).
    func actor(_ who: Who) async throws -> Principal {
        if who == .administrator { return .administrator }
        return try await world.actor(tenant(of: who), token: tokens[who]!)
    }

    func tenant(of who: Who) -> Tenant { who == .foreign ? globex : acme }

    func user(_ who: Who) -> User { users[who]! }

    /// Invites `who` as the team owner and accepts with their session.
    func addByInvitation(_ who: Who, role: TeamRole, team: Team? = nil) async throws {
        let team = team ?? self.team
        let owner = try await actor(.teamOwner)
        _ = try await accounts.teams.invite(
            tenant: acme, actor: owner, teamID: team.id.rawValue, email: user(who).email, role: role)
        let token = try XCTUnwrap(try world.lastInvitationToken(email: user(who).email))
        _ = try await accounts.teams.acceptInvitation(tenant: acme, token: token, sessionToken: tokens[who]!, password: "")
    }

    /// A new team owned by `teamOwner`, with `teamAdmin` and `teamMember`.
    func freshTeam(_ name: String = "Fresh") async throws -> Team {
        let owner = try await actor(.teamOwner)
        let team = try await accounts.teams.createTeam(tenant: acme, actor: owner, name: name).team
        try await addByInvitation(.teamAdmin, role: .admin, team: team)
        try await addByInvitation(.teamMember, role: .member, team: team)
        return team
    }

    /// The stored role of `who` in the team; nil if not a member.
    func role(_ who: Who, in team: Team? = nil) async throws -> TeamRole? {
        let team = team ?? self.team
        let id = user(who).id
        let tenant = acme.id
        return try await world.store.read { try $0.teamMember(tenant: tenant, team: team.id, user: id)?.role }
    }
}

extension World {
    /// The token of the newest `team.invitation_created` event for `email`.
    func lastInvitationToken(email: String) throws -> String? {
        for item in try events().reversed() {
            if case .teamInvitationCreated(_, _, _, let to, _, let token, _, _, _) = item.event, to == email {
                return token
            }
        }
        return nil
    }
}

/// How a call came out, for the role matrix.
enum Outcome: Equatable, CustomStringConvertible {
    case ok
    case failed(DomainError.Kind, String)

    static let notFound = Outcome.failed(.notFound, "TEAM_NOT_FOUND")
    static let denied = Outcome.failed(.permissionDenied, "TEAM_ROLE_REQUIRED")

    var description: String {
        switch self {
        case .ok: "ok"
        case .failed(let kind, let reason): "\(kind) \(reason)"
        }
    }

    static func of(_ body: () async throws -> Void) async -> Outcome {
        do {
            try await body()
            return .ok
        } catch let error as DomainError {
            return .failed(error.kind, error.reason)
        } catch {
            return .failed(.internal, "\(error)")
        }
    }
}
