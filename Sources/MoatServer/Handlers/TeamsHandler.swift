import MoatCore
import MoatProto
import MoatRPC

/// `moat.v1.Teams`: every method acts in the envelope's tenant, as the
/// session's user or (with no session) the administrator process.
struct TeamsHandler: Moat_V1_TeamsService {
    let accounts: AccountService

    private func resolve(_ context: RequestContext) async throws -> (Tenant, Principal) {
        let tenant = try await accounts.tenant(context)
        let actor = try await accounts.actor(
            tenant: tenant.id, token: context.authorization, callerIsAdministrator: context.caller.isAdmin)
        return (tenant, actor)
    }

    func create(request: Moat_V1_CreateTeamRequest, context: RequestContext) async throws -> Moat_V1_Team {
        let (tenant, actor) = try await resolve(context)
        return Moat_V1_Team(
            try await accounts.teams.createTeam(
                tenant: tenant, actor: actor, name: request.name, ownerUserID: request.ownerUserID))
    }

    func get(request: Moat_V1_GetTeamRequest, context: RequestContext) async throws -> Moat_V1_Team {
        let (tenant, actor) = try await resolve(context)
        return Moat_V1_Team(try await accounts.teams.team(tenant: tenant, actor: actor, id: request.teamID))
    }

    func list(request: Moat_V1_ListTeamsRequest, context: RequestContext) async throws -> Moat_V1_ListTeamsResponse {
        let (tenant, actor) = try await resolve(context)
        let page = try await accounts.teams.listTeams(
            tenant: tenant, actor: actor, pageSize: Int(request.pageSize), pageToken: request.pageToken)
        return .with {
            $0.teams = page.teams.map(Moat_V1_Team.init)
            $0.nextPageToken = page.nextPageToken
        }
    }

    func rename(request: Moat_V1_RenameTeamRequest, context: RequestContext) async throws -> Moat_V1_Team {
        let (tenant, actor) = try await resolve(context)
        return Moat_V1_Team(
            try await accounts.teams.renameTeam(tenant: tenant, actor: actor, id: request.teamID, name: request.name))
    }

    func delete(request: Moat_V1_DeleteTeamRequest, context: RequestContext) async throws -> Moat_V1_DeleteTeamResponse {
        let (tenant, actor) = try await resolve(context)
        try await accounts.teams.deleteTeam(tenant: tenant, actor: actor, id: request.teamID)
        return Moat_V1_DeleteTeamResponse()
    }

    func invite(request: Moat_V1_InviteRequest, context: RequestContext) async throws -> Moat_V1_TeamInvitation {
        let (tenant, actor) = try await resolve(context)
        let role = try request.role.domain(default: .member)
        return Moat_V1_TeamInvitation(
            try await accounts.teams.invite(
                tenant: tenant, actor: actor, teamID: request.teamID, email: request.email, role: role))
    }

    func listInvitations(request: Moat_V1_ListInvitationsRequest, context: RequestContext) async throws
        -> Moat_V1_ListInvitationsResponse
    {
        let (tenant, actor) = try await resolve(context)
        let invitations = try await accounts.teams.listInvitations(tenant: tenant, actor: actor, teamID: request.teamID)
        return .with { $0.invitations = invitations.map(Moat_V1_TeamInvitation.init) }
    }

    func revokeInvitation(request: Moat_V1_RevokeInvitationRequest, context: RequestContext) async throws
        -> Moat_V1_RevokeInvitationResponse
    {
        let (tenant, actor) = try await resolve(context)
        try await accounts.teams.revokeInvitation(tenant: tenant, actor: actor, id: request.invitationID)
        return Moat_V1_RevokeInvitationResponse()
    }

    func acceptInvitation(request: Moat_V1_AcceptInvitationRequest, context: RequestContext) async throws
        -> Moat_V1_AcceptInvitationResponse
    {
        let tenant = try await accounts.tenant(context)
        let accepted = try await accounts.teams.acceptInvitation(
            tenant: tenant, token: request.token, sessionToken: context.authorization, password: request.password)
        return .with {
            $0.team = Moat_V1_Team(
                TeamAccess(team: accepted.team, role: accepted.member.role, isMember: true))
            $0.userID = accepted.member.userID.rawValue
            $0.role = Moat_V1_TeamRole(accepted.member.role)
            $0.createdAccount = accepted.createdAccount
        }
    }

    func listMembers(request: Moat_V1_ListTeamMembersRequest, context: RequestContext) async throws
        -> Moat_V1_ListTeamMembersResponse
    {
        let (tenant, actor) = try await resolve(context)
        let members = try await accounts.teams.listTeamMembers(tenant: tenant, actor: actor, teamID: request.teamID)
        return .with { $0.members = members.map { Moat_V1_TeamMember($0.member, email: $0.email) } }
    }

    func changeRole(request: Moat_V1_ChangeTeamRoleRequest, context: RequestContext) async throws -> Moat_V1_TeamMember {
        let (tenant, actor) = try await resolve(context)
        guard request.role != .unspecified else {
            throw DomainError(.invalidArgument, .teamRoleInvalid, "name the new role")
        }
        let role = try request.role.domain(default: .member)
        let changed = try await accounts.teams.changeTeamRole(
            tenant: tenant, actor: actor, teamID: request.teamID, userID: request.userID, role: role)
        return Moat_V1_TeamMember(changed.member, email: changed.email)
    }

    func removeMember(request: Moat_V1_RemoveTeamMemberRequest, context: RequestContext) async throws
        -> Moat_V1_RemoveTeamMemberResponse
    {
        let (tenant, actor) = try await resolve(context)
        try await accounts.teams.removeTeamMember(tenant: tenant, actor: actor, teamID: request.teamID, userID: request.userID)
        return Moat_V1_RemoveTeamMemberResponse()
    }

    func leave(request: Moat_V1_LeaveTeamRequest, context: RequestContext) async throws -> Moat_V1_LeaveTeamResponse {
        let (tenant, actor) = try await resolve(context)
        try await accounts.teams.leaveTeam(tenant: tenant, actor: actor, teamID: request.teamID)
        return Moat_V1_LeaveTeamResponse()
    }

    func transferOwnership(request: Moat_V1_TransferOwnershipRequest, context: RequestContext) async throws
        -> Moat_V1_TransferOwnershipResponse
    {
        let (tenant, actor) = try await resolve(context)
        try await accounts.teams.transferTeamOwnership(
            tenant: tenant, actor: actor, teamID: request.teamID, userID: request.userID)
        return Moat_V1_TransferOwnershipResponse()
    }

    func checkPermission(request: Moat_V1_CheckTeamPermissionRequest, context: RequestContext) async throws
        -> Moat_V1_CheckTeamPermissionResponse
    {
        let tenant = try await accounts.tenant(context)
        guard let action = request.action.domain else {
            throw DomainError(.invalidArgument, .teamActionInvalid, "unknown or missing action")
        }
        let answer = try await accounts.teams.checkTeamPermission(
            tenant: tenant, sessionToken: context.authorization, teamID: request.teamID, action: action)
        return .with {
            $0.allowed = answer.allowed
            $0.role = answer.role.map(Moat_V1_TeamRole.init) ?? .unspecified
        }
    }
}

extension Moat_V1_TeamRole {
    init(_ role: TeamRole) {
        switch role {
        case .member: self = .member
        case .admin: self = .admin
        case .owner: self = .owner
        }
    }

    /// The domain role; UNSPECIFIED is `fallback`, an unknown value
    /// INVALID_ARGUMENT (`TEAM_ROLE_INVALID`).
    func domain(default fallback: TeamRole) throws(DomainError) -> TeamRole {
        switch self {
        case .unspecified: fallback
        case .member: .member
        case .admin: .admin
        case .owner: .owner
        case .UNRECOGNIZED: throw DomainError(.invalidArgument, .teamRoleInvalid, "unknown team role")
        }
    }
}

extension Moat_V1_TeamAction {
    /// The domain action; nil for UNSPECIFIED or an unknown value.
    var domain: TeamAction? {
        switch self {
        case .view: .view
        case .editContent: .editContent
        case .manageContent: .manageContent
        case .invite: .invite
        case .manageMembers: .manageMembers
        case .rename: .rename
        case .manageSettings: .manageSettings
        case .delete: .delete
        case .transferOwnership: .transferOwnership
        case .unspecified, .UNRECOGNIZED: nil
        }
    }
}

extension Moat_V1_Team {
    init(_ access: TeamAccess) {
        self.init()
        id = access.team.id.rawValue
        tenantID = access.team.tenantID.rawValue
        name = access.team.name
        createdAtUnix = access.team.createdAt.seconds
        callerRole = Moat_V1_TeamRole(access.role)
        callerIsMember = access.isMember
    }
}

extension Moat_V1_TeamMember {
    init(_ member: TeamMember, email: String) {
        self.init()
        userID = member.userID.rawValue
        self.email = email
        role = Moat_V1_TeamRole(member.role)
        joinedAtUnix = member.joinedAt.seconds
    }
}

extension Moat_V1_TeamInvitation {
    init(_ invitation: TeamInvitation) {
        self.init()
        id = invitation.id.rawValue
        teamID = invitation.teamID.rawValue
        email = invitation.email
        role = Moat_V1_TeamRole(invitation.role)
        invitedByUserID = invitation.invitedBy?.rawValue ?? ""
        createdAtUnix = invitation.createdAt.seconds
        expiresAtUnix = invitation.expiresAt.seconds
    }
}
