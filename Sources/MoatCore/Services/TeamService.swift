import Foundation

/// A team as one caller sees it.
public struct TeamAccess: Sendable, Equatable {
    public var team: Team
    /// The caller's effective role: their team role raised by their tenant
    /// role; `.owner` for administrator callers.
    public var role: TeamRole
    /// Whether the caller is a member (not only acting through the tenant role).
    public var isMember: Bool

    public init(team: Team, role: TeamRole, isMember: Bool) {
        self.team = team
        self.role = role
        self.isMember = isMember
    }
}

/// A member with their email, for lists.
public struct TeamMemberListing: Sendable, Equatable {
    public var member: TeamMember
    public var email: String

    public init(member: TeamMember, email: String) {
        self.member = member
        self.email = email
    }
}

/// What accepting an invitation did.
public struct InvitationAcceptance: Sendable, Equatable {
    public var team: Team
    public var member: TeamMember
    /// The account was created by this call.
    public var createdAccount: Bool
}

extension DomainError {
    static let teamNotFound = DomainError(.notFound, .teamNotFound, "no such team")
    static let teamRoleRequired = DomainError(.permissionDenied, .teamRoleRequired, "your team role does not allow this")
    static let onlyOwnerForOwners = DomainError(
        .permissionDenied, .teamRoleRequired, "only a team owner may give, change or remove the owner role")
    static let memberNotFound = DomainError(.notFound, .memberNotFound, "no such member of the team")
    static let invitationNotFound = DomainError(.notFound, .invitationNotFound, "no such pending invitation")
    /// The one answer to a token that cannot be accepted, whatever was wrong.
    static let invitationInvalid = DomainError(.unauthenticated, .invitationInvalid, "the invitation is not valid")
    static let lastOwner = DomainError(
        .failedPrecondition, .lastOwner, "a team needs an owner: transfer ownership or delete the team first")
}

/// Teams, their members and invitations.
public final class TeamService: AccountFeature {
    let context: AccountContext

    init(context: AccountContext) {
        self.context = context
    }
}

extension TeamService {
    // MARK: Who may do what

    /// The role an actor acts with in a team: administrators as owners,
    /// tenant owners as owners, tenant admins as at least admins, everyone
    /// else with their membership's role (nil: none).
    static func effectiveTeamRole(actor: Principal, member: TeamMember?) -> TeamRole? {
        switch actor {
        case .administrator:
            return .owner
        case .user(_, let user):
            let implied = TeamRole.implied(by: user.role)
            switch (member?.role, implied) {
            case (let own?, let implied?): return max(own, implied)
            case (let own?, nil): return own
            case (nil, let implied): return implied
            }
        }
    }

    /// Resolves a team for an actor and checks `action` against the one
    /// role table (`TeamAction.minimumRole`). A team of another tenant, an
    /// unknown one, or one the actor has no role in is NOT_FOUND.
    static func authorizeTeam(
        _ reader: any AccountStoreReader, tenant: TenantID, actor: Principal, teamID: TeamID, action: TeamAction
    ) throws -> (team: Team, member: TeamMember?, role: TeamRole) {
        guard actor.belongs(to: tenant), let team = try reader.team(tenant: tenant, id: teamID) else {
            throw DomainError.teamNotFound
        }
        let member = try actor.userID.flatMap { try reader.teamMember(tenant: tenant, team: teamID, user: $0) }
        guard let role = effectiveTeamRole(actor: actor, member: member) else { throw DomainError.teamNotFound }
        guard action.isAllowed(for: role) else { throw DomainError.teamRoleRequired }
        return (team, member, role)
    }

    static func parseTeamID(_ text: String) throws(DomainError) -> TeamID {
        guard let id = TeamID(text) else { throw DomainError.teamNotFound }
        return id
    }

    static func parseMemberID(_ text: String) throws(DomainError) -> UserID {
        guard let id = UserID(text) else { throw DomainError.memberNotFound }
        return id
    }

    /// A security-log line for `user` about a team change, with the acting
    /// session's device when a user acted.
    static func teamLog(
        tenant: TenantID, user: UserID, kind: SecurityEventKind, actor: Principal, detail: String, at now: Timestamp
    ) -> SecurityLogEntry {
        var ip = ""
        var userAgent = ""
        if case .user(let session, _) = actor {
            ip = session.client.ip
            userAgent = session.client.userAgent
        }
        return SecurityLogEntry(
            tenantID: tenant, userID: user, kind: kind, ip: ip, userAgent: userAgent, detail: detail, createdAt: now)
    }

    /// "by us_..." or "by an administrator", for log details.
    static func byActor(_ actor: Principal) -> String {
        actor.userID.map { "by \($0)" } ?? "by an administrator"
    }

    static func ownerCount(_ reader: any AccountStoreReader, tenant: TenantID, team: TeamID) throws -> Int {
        try reader.teamMembers(tenant: tenant, team: team).count { $0.role == .owner }
    }

    // MARK: Teams

    /// Creates a team; its owner is the acting user, or for an administrator
    /// caller the user it names. Emits `team.created`.
    public func createTeam(tenant: Tenant, actor: Principal, name: String, ownerUserID: String = "") async throws
        -> TeamAccess
    {
        guard actor.belongs(to: tenant.id) else { throw DomainError.forbidden }
        let name = try Team.normalizedName(name)
        let owner: UserID
        switch actor {
        case .administrator:
            guard !ownerUserID.isEmpty else {
                throw DomainError.invalid(.ownerRequired, "an administrator caller must name the team's owner")
            }
            guard let id = UserID(ownerUserID) else { throw DomainError.userNotFound }
            owner = id
        case .user(_, let user):
            guard ownerUserID.isEmpty || ownerUserID == user.id.rawValue else {
                throw DomainError(
                    .permissionDenied, .roleRequired, "only administrator callers name another user as owner")
            }
            owner = user.id
        }
        let now = clock.now()
        let team = Team(id: .random(), tenantID: tenant.id, name: name, createdAt: now)
        try await store.write { writer in
            guard try writer.user(tenant: tenant.id, id: owner) != nil else { throw DomainError.userNotFound }
            try writer.insert(team)
            try writer.insert(TeamMember(tenantID: tenant.id, teamID: team.id, userID: owner, role: .owner, joinedAt: now))
            try writer.append(
                .teamCreated(teamID: team.id, name: name, ownerID: owner, actorID: actor.userID), tenant: tenant.id, at: now)
            try writer.append(
                Self.teamLog(
                    tenant: tenant.id, user: owner, kind: .teamCreated, actor: actor,
                    detail: "team \(team.id), owner, \(Self.byActor(actor))", at: now))
        }
        return TeamAccess(team: team, role: .owner, isMember: actor.userID == owner)
    }

    /// A team with the caller's role (VIEW).
    public func team(tenant: Tenant, actor: Principal, id: String) async throws -> TeamAccess {
        let id = try Self.parseTeamID(id)
        return try await store.read { reader in
            let (team, member, role) = try Self.authorizeTeam(
                reader, tenant: tenant.id, actor: actor, teamID: id, action: .view)
            return TeamAccess(team: team, role: role, isMember: member != nil)
        }
    }

    /// A page of teams ordered by (name, id): the caller's own, or every team
    /// of the tenant for administrators and tenant owners/admins.
    public func listTeams(tenant: Tenant, actor: Principal, pageSize: Int, pageToken: String) async throws
        -> (teams: [TeamAccess], nextPageToken: String)
    {
        guard actor.belongs(to: tenant.id) else { throw DomainError.forbidden }
        let size = try Self.pageSize(pageSize)
        let after = try Self.decodeTeamPageToken(pageToken)
        let page = try await store.read { reader -> [TeamAccess] in
            switch actor {
            case .user(_, let user) where TeamRole.implied(by: user.role) == nil:
                return try reader.teamMemberships(tenant: tenant.id, user: user.id, after: after, limit: size + 1)
                    .map { TeamAccess(team: $0.team, role: $0.role, isMember: true) }
            default:
                return try reader.teams(tenant: tenant.id, after: after, limit: size + 1).map { team in
                    let member = try actor.userID.flatMap {
                        try reader.teamMember(tenant: tenant.id, team: team.id, user: $0)
                    }
                    let role = Self.effectiveTeamRole(actor: actor, member: member) ?? .member
                    return TeamAccess(team: team, role: role, isMember: member != nil)
                }
            }
        }
        let teams = Array(page.prefix(size))
        let next = page.count > size ? teams.last.map { Self.encodeTeamPageToken($0.team) } ?? "" : ""
        return (teams, next)
    }

    static func encodeTeamPageToken(_ team: Team) -> String {
        // Names hold no control characters, so NUL separates unambiguously.
        encodePageToken(team.name + "\u{0}" + team.id.rawValue)
    }

    static func decodeTeamPageToken(_ token: String) throws(DomainError) -> TeamPageKey? {
        guard let key = try decodePageToken(token) else { return nil }
        let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
        guard parts.count == 2, let id = TeamID(String(parts[1])) else {
            throw .invalid(.pageTokenInvalid, "page_token is not one this server made")
        }
        return TeamPageKey(name: String(parts[0]), id: id)
    }

    /// Renames a team (RENAME). Emits `team.renamed` when the name changed.
    public func renameTeam(tenant: Tenant, actor: Principal, id: String, name: String) async throws -> TeamAccess {
        let id = try Self.parseTeamID(id)
        let name = try Team.normalizedName(name)
        let now = clock.now()
        return try await store.write { writer in
            let (team, member, role) = try Self.authorizeTeam(
                writer, tenant: tenant.id, actor: actor, teamID: id, action: .rename)
            var renamed = team
            renamed.name = name
            if team.name != name {
                guard try writer.renameTeam(tenant: tenant.id, id: id, name: name) else { throw DomainError.teamNotFound }
                try writer.append(
                    .teamRenamed(teamID: id, previousName: team.name, name: name, actorID: actor.userID),
                    tenant: tenant.id, at: now)
                if let user = actor.userID {
                    try writer.append(
                        Self.teamLog(
                            tenant: tenant.id, user: user, kind: .teamRenamed, actor: actor, detail: "team \(id)",
                            at: now))
                }
            }
            return TeamAccess(team: renamed, role: role, isMember: member != nil)
        }
    }

    /// Deletes a team with its memberships and invitations (DELETE). Emits
    /// `team.deleted` and a security-log line for each former member.
    public func deleteTeam(tenant: Tenant, actor: Principal, id: String) async throws {
        let id = try Self.parseTeamID(id)
        let now = clock.now()
        try await store.write { writer in
            let (team, _, _) = try Self.authorizeTeam(writer, tenant: tenant.id, actor: actor, teamID: id, action: .delete)
            let members = try writer.teamMembers(tenant: tenant.id, team: id)
            guard try writer.deleteTeam(tenant: tenant.id, id: id) else { throw DomainError.teamNotFound }
            try writer.append(
                .teamDeleted(teamID: id, name: team.name, memberIDs: members.map(\.userID), actorID: actor.userID),
                tenant: tenant.id, at: now)
            for member in members {
                try writer.append(
                    Self.teamLog(
                        tenant: tenant.id, user: member.userID, kind: .teamDeleted, actor: actor,
                        detail: "team \(id), \(Self.byActor(actor))", at: now))
            }
        }
    }

    // MARK: Invitations

    /// Invites an email to a team (INVITE; only an owner may invite an
    /// owner). The token goes only into `team.invitation_created`. A pending
    /// invitation of the same email to the team is revoked (replaced).
    public func invite(tenant: Tenant, actor: Principal, teamID: String, email: String, role: TeamRole) async throws
        -> TeamInvitation
    {
        let teamID = try Self.parseTeamID(teamID)
        let email = try EmailAddress.normalize(email)
        let now = clock.now()
        let token = OpaqueToken.make()
        let invitation = TeamInvitation(
            id: .random(), tenantID: tenant.id, teamID: teamID, email: email, role: role,
            tokenHash: OpaqueToken.hash(token), invitedBy: actor.userID, createdAt: now,
            expiresAt: now.adding(seconds: configuration.invitationLifetimeSeconds))
        var inviterEmail = ""
        if case .user(_, let user) = actor { inviterEmail = user.email }
        return try await store.write { [inviterEmail] writer in
            let (team, _, actorRole) = try Self.authorizeTeam(
                writer, tenant: tenant.id, actor: actor, teamID: teamID, action: .invite)
            guard role <= actorRole else { throw DomainError.onlyOwnerForOwners }
            try Self.requireActiveTenant(writer, tenant.id)
            if let existing = try writer.user(tenant: tenant.id, email: email),
                try writer.teamMember(tenant: tenant.id, team: teamID, user: existing.id) != nil
            {
                throw DomainError.alreadyMember
            }
            for earlier in try writer.openTeamInvitations(tenant: tenant.id, team: teamID) where earlier.email == email {
                // Replacing is revoking: an admin may not cancel an owner invitation.
                guard earlier.role <= actorRole else { throw DomainError.onlyOwnerForOwners }
                guard try writer.revokeTeamInvitation(tenant: tenant.id, id: earlier.id, at: now) else { continue }
                try writer.append(
                    .teamInvitationRevoked(
                        invitationID: earlier.id, teamID: teamID, email: email, reason: InvitationRevocationReason.replaced.rawValue,
                        actorID: actor.userID),
                    tenant: tenant.id, at: now)
            }
            try writer.insert(invitation)
            try writer.append(
                .teamInvitationCreated(
                    invitationID: invitation.id, teamID: teamID, teamName: team.name, email: email, role: role,
                    token: token, expiresAt: invitation.expiresAt, inviterID: actor.userID, inviterEmail: inviterEmail),
                tenant: tenant.id, at: now)
            if let user = actor.userID {
                try writer.append(
                    Self.teamLog(
                        tenant: tenant.id, user: user, kind: .teamInvitationCreated, actor: actor,
                        detail: "invitation \(invitation.id) to team \(teamID) as \(role.rawValue)", at: now))
            }
            return invitation
        }
    }

    /// The team's pending invitations, newest first (INVITE).
    public func listInvitations(tenant: Tenant, actor: Principal, teamID: String) async throws -> [TeamInvitation] {
        let teamID = try Self.parseTeamID(teamID)
        let now = clock.now()
        return try await store.read { reader in
            _ = try Self.authorizeTeam(reader, tenant: tenant.id, actor: actor, teamID: teamID, action: .invite)
            return try reader.openTeamInvitations(tenant: tenant.id, team: teamID).filter { $0.isPending(at: now) }
        }
    }

    /// Revokes a pending invitation (INVITE; only an owner for an invitation
    /// to OWNER). Anything not pending, or of a team the caller cannot see, is
    /// NOT_FOUND (`INVITATION_NOT_FOUND`).
    public func revokeInvitation(tenant: Tenant, actor: Principal, id: String) async throws {
        guard let id = InvitationID(id) else { throw DomainError.invitationNotFound }
        let now = clock.now()
        try await store.write { writer in
            guard let invitation = try writer.teamInvitation(tenant: tenant.id, id: id), invitation.isPending(at: now)
            else { throw DomainError.invitationNotFound }
            let actorRole: TeamRole
            do {
                actorRole = try Self.authorizeTeam(
                    writer, tenant: tenant.id, actor: actor, teamID: invitation.teamID, action: .invite
                ).role
            } catch let error as DomainError where error == .teamNotFound {
                throw DomainError.invitationNotFound
            }
            guard invitation.role <= actorRole else { throw DomainError.onlyOwnerForOwners }
            guard try writer.revokeTeamInvitation(tenant: tenant.id, id: id, at: now) else {
                throw DomainError.invitationNotFound
            }
            try writer.append(
                .teamInvitationRevoked(
                    invitationID: id, teamID: invitation.teamID, email: invitation.email, reason: InvitationRevocationReason.revoked.rawValue,
                    actorID: actor.userID),
                tenant: tenant.id, at: now)
            if let user = actor.userID {
                try writer.append(
                    Self.teamLog(
                        tenant: tenant.id, user: user, kind: .teamInvitationRevoked, actor: actor,
                        detail: "invitation \(id) to team \(invitation.teamID)", at: now))
            }
        }
    }

    /// Accepts an invitation. With a session token the session's user (who
    /// must have the invited email) joins; without one, an account is created
    /// with `password` under the tenant's rules (ALREADY_EXISTS `EMAIL_TAKEN`
    /// if the email has one). Any token that cannot be accepted is the same
    /// UNAUTHENTICATED `INVITATION_INVALID`. Single use (a conditional
    /// update): of concurrent accepts exactly one wins.
    public func acceptInvitation(tenant: Tenant, token: String, sessionToken: String, password: String) async throws
        -> InvitationAcceptance
    {
        guard !token.isEmpty, token.utf8.count <= 256 else { throw DomainError.invitationInvalid }
        let hash = OpaqueToken.hash(token)
        let start = clock.now()
        let found = try await store.read { reader -> (TeamInvitation, Team)? in
            guard let invitation = try reader.teamInvitation(tenant: tenant.id, tokenHash: hash),
                invitation.isPending(at: start), let team = try reader.team(tenant: tenant.id, id: invitation.teamID)
            else { return nil }
            return (invitation, team)
        }
        guard let (invitation, team) = found else { throw DomainError.invitationInvalid }

        if !sessionToken.isEmpty {
            let (session, user) = try await authenticate(tenant: tenant.id, token: sessionToken)
            guard user.email == invitation.email else {
                throw DomainError(
                    .permissionDenied, .invitationEmailMismatch,
                    "the invitation is for another email: sign in as the invited user")
            }
            let actor = Principal.user(session, user)
            let now = clock.now()
            return try await store.write { writer in
                try Self.requireActiveTenant(writer, tenant.id)
                guard let accepted = try writer.acceptTeamInvitation(tenant: tenant.id, tokenHash: hash, user: user.id, at: now)
                else { throw DomainError.invitationInvalid }
                let member = try Self.join(writer, invitation: accepted, user: user, actor: actor, at: now)
                return InvitationAcceptance(team: team, member: member, createdAccount: false)
            }
        }

        guard !password.isEmpty else {
            throw DomainError.invalid(.passwordRequired, "a password is needed to create the account")
        }
        if tenant.status == .pendingDeletion { throw DomainError.tenantPendingDeletion(purgeAfter: tenant.purgeAfter) }
        if try await store.read({ try $0.user(tenant: tenant.id, email: invitation.email) }) != nil {
            throw DomainError.emailTaken
        }
        // The same rules and hashing as every account creation.
        try PasswordRules.check(password, minimumLength: tenant.policy.minPasswordLength, email: invitation.email)
        let passwordHash = try await hasher.hash(PasswordRules.normalized(password))
        let now = clock.now()
        let user = User(
            id: .random(), tenantID: tenant.id, email: invitation.email, passwordHash: passwordHash, role: .member,
            createdAt: now)
        return try await store.write { writer in
            // A lost race is INVITATION_INVALID: checked before the user
            // exists, spent (conditionally) once it does, which the stored
            // acceptor's foreign key needs.
            try Self.requireActiveTenant(writer, tenant.id)
            guard try writer.teamInvitation(tenant: tenant.id, tokenHash: hash)?.isPending(at: now) == true else {
                throw DomainError.invitationInvalid
            }
            try writer.insert(user)
            guard let accepted = try writer.acceptTeamInvitation(tenant: tenant.id, tokenHash: hash, user: user.id, at: now)
            else { throw DomainError.invitationInvalid }
            try writer.append(.userCreated(userID: user.id, email: user.email, role: .member), tenant: tenant.id, at: now)
            let member = try Self.join(writer, invitation: accepted, user: user, actor: nil, at: now)
            return InvitationAcceptance(team: team, member: member, createdAccount: true)
        }
    }

    /// Adds the invitation's user to its team with `team.member_added` and a
    /// security-log line.
    private static func join(
        _ writer: any AccountStoreWriter, invitation: TeamInvitation, user: User, actor: Principal?, at now: Timestamp
    ) throws -> TeamMember {
        let member = TeamMember(
            tenantID: invitation.tenantID, teamID: invitation.teamID, userID: user.id, role: invitation.role,
            joinedAt: now)
        try writer.insert(member)
        try writer.append(
            .teamMemberAdded(
                teamID: invitation.teamID, userID: user.id, email: user.email, role: invitation.role,
                invitationID: invitation.id),
            tenant: invitation.tenantID, at: now)
        try writer.append(
            teamLog(
                tenant: invitation.tenantID, user: user.id, kind: .teamJoined, actor: actor ?? .administrator,
                detail: "team \(invitation.teamID) as \(invitation.role.rawValue), invitation \(invitation.id)", at: now))
        return member
    }

    // MARK: Members

    /// The team's members with their emails, ordered by email (VIEW).
    public func listTeamMembers(tenant: Tenant, actor: Principal, teamID: String) async throws -> [TeamMemberListing] {
        let teamID = try Self.parseTeamID(teamID)
        return try await store.read { reader in
            _ = try Self.authorizeTeam(reader, tenant: tenant.id, actor: actor, teamID: teamID, action: .view)
            return try reader.teamMembers(tenant: tenant.id, team: teamID).map { member in
                TeamMemberListing(
                    member: member, email: try reader.user(tenant: tenant.id, id: member.userID)?.email ?? "")
            }
            .sorted { ($0.email, $0.member.userID.rawValue) < ($1.email, $1.member.userID.rawValue) }
        }
    }

    /// Sets a member's role (MANAGE_MEMBERS; only an owner may change an
    /// owner or grant OWNER; never demotes the last owner).
    public func changeTeamRole(tenant: Tenant, actor: Principal, teamID: String, userID: String, role: TeamRole)
        async throws -> TeamMemberListing
    {
        let teamID = try Self.parseTeamID(teamID)
        let userID = try Self.parseMemberID(userID)
        let now = clock.now()
        return try await store.write { writer in
            let (_, _, actorRole) = try Self.authorizeTeam(
                writer, tenant: tenant.id, actor: actor, teamID: teamID, action: .manageMembers)
            guard var target = try writer.teamMember(tenant: tenant.id, team: teamID, user: userID) else {
                throw DomainError.memberNotFound
            }
            if target.role == .owner || role == .owner {
                guard actorRole == .owner else { throw DomainError.onlyOwnerForOwners }
            }
            let email = try writer.user(tenant: tenant.id, id: userID)?.email ?? ""
            guard target.role != role else { return TeamMemberListing(member: target, email: email) }
            if target.role == .owner, try Self.ownerCount(writer, tenant: tenant.id, team: teamID) <= 1 {
                throw DomainError.lastOwner
            }
            let previous = target.role
            guard try writer.setTeamRole(tenant: tenant.id, team: teamID, user: userID, role: role) else {
                throw DomainError.memberNotFound
            }
            target.role = role
            try Self.revokeInvitations(writer, tenant: tenant.id, team: teamID, sentBy: userID, keeping: role, at: now)
            try writer.append(
                .teamMemberRoleChanged(
                    teamID: teamID, userID: userID, previousRole: previous, role: role, actorID: actor.userID),
                tenant: tenant.id, at: now)
            try writer.append(
                Self.teamLog(
                    tenant: tenant.id, user: userID, kind: .teamRoleChanged, actor: actor,
                    detail: "team \(teamID): \(previous.rawValue) to \(role.rawValue), \(Self.byActor(actor))", at: now))
            return TeamMemberListing(member: target, email: email)
        }
    }

    /// Revokes the open invitations `inviter` sent to the team that their
    /// role no longer allows (all of them once they left or were removed,
    /// `keeping` nil): nobody undoes their own removal or demotion with a
    /// token they sent to an address they control.
    static func revokeInvitations(
        _ writer: any AccountStoreWriter, tenant: TenantID, team: TeamID, sentBy inviter: UserID, keeping role: TeamRole?,
        at now: Timestamp
    ) throws {
        for invitation in try writer.openTeamInvitations(tenant: tenant, team: team) where invitation.invitedBy == inviter {
            if let role, TeamAction.invite.isAllowed(for: role), invitation.role <= role { continue }
            guard try writer.revokeTeamInvitation(tenant: tenant, id: invitation.id, at: now) else { continue }
            try writer.append(
                .teamInvitationRevoked(
                    invitationID: invitation.id, teamID: team, email: invitation.email, reason: InvitationRevocationReason.inviterRoleChanged.rawValue,
                    actorID: nil),
                tenant: tenant, at: now)
        }
    }

    /// Removes a member (MANAGE_MEMBERS; only an owner may remove an owner;
    /// never the last owner).
    public func removeTeamMember(tenant: Tenant, actor: Principal, teamID: String, userID: String) async throws {
        let teamID = try Self.parseTeamID(teamID)
        let userID = try Self.parseMemberID(userID)
        let now = clock.now()
        try await store.write { writer in
            let (_, _, actorRole) = try Self.authorizeTeam(
                writer, tenant: tenant.id, actor: actor, teamID: teamID, action: .manageMembers)
            guard let target = try writer.teamMember(tenant: tenant.id, team: teamID, user: userID) else {
                throw DomainError.memberNotFound
            }
            if target.role == .owner {
                guard actorRole == .owner else { throw DomainError.onlyOwnerForOwners }
                guard try Self.ownerCount(writer, tenant: tenant.id, team: teamID) > 1 else { throw DomainError.lastOwner }
            }
            guard try writer.deleteTeamMember(tenant: tenant.id, team: teamID, user: userID) else {
                throw DomainError.memberNotFound
            }
            try Self.revokeInvitations(writer, tenant: tenant.id, team: teamID, sentBy: userID, keeping: nil, at: now)
            try writer.append(
                .teamMemberRemoved(teamID: teamID, userID: userID, role: target.role, actorID: actor.userID),
                tenant: tenant.id, at: now)
            try writer.append(
                Self.teamLog(
                    tenant: tenant.id, user: userID, kind: .teamRemoved, actor: actor,
                    detail: "team \(teamID), \(Self.byActor(actor))", at: now))
        }
    }

    /// The acting user leaves the team (never the last owner).
    public func leaveTeam(tenant: Tenant, actor: Principal, teamID: String) async throws {
        let teamID = try Self.parseTeamID(teamID)
        let now = clock.now()
        try await store.write { writer in
            let (_, member, _) = try Self.authorizeTeam(
                writer, tenant: tenant.id, actor: actor, teamID: teamID, action: .view)
            guard let member else {
                throw DomainError(.failedPrecondition, .notAMember, "you are not a member of this team")
            }
            if member.role == .owner, try Self.ownerCount(writer, tenant: tenant.id, team: teamID) <= 1 {
                throw DomainError.lastOwner
            }
            guard try writer.deleteTeamMember(tenant: tenant.id, team: teamID, user: member.userID) else {
                throw DomainError(.failedPrecondition, .notAMember, "you are not a member of this team")
            }
            try Self.revokeInvitations(
                writer, tenant: tenant.id, team: teamID, sentBy: member.userID, keeping: nil, at: now)
            try writer.append(
                .teamMemberLeft(teamID: teamID, userID: member.userID, role: member.role), tenant: tenant.id, at: now)
            try writer.append(
                Self.teamLog(
                    tenant: tenant.id, user: member.userID, kind: .teamLeft, actor: actor, detail: "team \(teamID)",
                    at: now))
        }
    }

    /// Makes a member an owner (TRANSFER_OWNERSHIP); the calling member, if
    /// an owner, becomes an admin.
    public func transferTeamOwnership(tenant: Tenant, actor: Principal, teamID: String, userID: String) async throws {
        let teamID = try Self.parseTeamID(teamID)
        let userID = try Self.parseMemberID(userID)
        let now = clock.now()
        try await store.write { writer in
            let (_, caller, _) = try Self.authorizeTeam(
                writer, tenant: tenant.id, actor: actor, teamID: teamID, action: .transferOwnership)
            guard let target = try writer.teamMember(tenant: tenant.id, team: teamID, user: userID) else {
                throw DomainError.memberNotFound
            }
            guard target.role != .owner else {
                throw DomainError(.failedPrecondition, .alreadyOwner, "the member is already an owner")
            }
            _ = try writer.setTeamRole(tenant: tenant.id, team: teamID, user: userID, role: .owner)
            var from: UserID?
            if let caller, caller.role == .owner {
                _ = try writer.setTeamRole(tenant: tenant.id, team: teamID, user: caller.userID, role: .admin)
                from = caller.userID
            }
            try writer.append(
                .teamOwnershipTransferred(teamID: teamID, fromUserID: from, toUserID: userID, actorID: actor.userID),
                tenant: tenant.id, at: now)
            try writer.append(
                Self.teamLog(
                    tenant: tenant.id, user: userID, kind: .teamOwnershipTransferred, actor: actor,
                    detail: "team \(teamID): now owner, \(Self.byActor(actor))", at: now))
            if let from {
                try writer.append(
                    Self.teamLog(
                        tenant: tenant.id, user: from, kind: .teamOwnershipTransferred, actor: actor,
                        detail: "team \(teamID): ownership to \(userID), now admin", at: now))
            }
        }
    }

    // MARK: Checking

    /// Whether the session's user may take `action` in the team, and their
    /// effective role (nil: none). Another tenant's or an unknown team is
    /// NOT_FOUND; an invalid session UNAUTHENTICATED.
    public func checkTeamPermission(tenant: Tenant, sessionToken: String, teamID: String, action: TeamAction)
        async throws -> (allowed: Bool, role: TeamRole?)
    {
        let (session, user) = try await authenticate(tenant: tenant.id, token: sessionToken)
        let teamID = try Self.parseTeamID(teamID)
        let actor = Principal.user(session, user)
        return try await store.read { reader in
            guard try reader.team(tenant: tenant.id, id: teamID) != nil else { throw DomainError.teamNotFound }
            let member = try reader.teamMember(tenant: tenant.id, team: teamID, user: user.id)
            let role = Self.effectiveTeamRole(actor: actor, member: member)
            return (action.isAllowed(for: role), role)
        }
    }
}
