/// A membership's key in the memory store.
struct TeamMemberKey: Hashable, Sendable {
    var team: TeamID
    var user: UserID
}

extension MemoryTransaction {
    func team(tenant: TenantID, id: TeamID) -> Team? {
        guard let team = state.teams[id], team.tenantID == tenant else { return nil }
        return team
    }

    func teams(tenant: TenantID, after: TeamPageKey?, limit: Int) -> [Team] {
        Array(
            state.teams.values.filter { team in team.tenantID == tenant && (after?.precedes(team) ?? true) }
                .sorted(by: Self.teamOrder).prefix(max(0, limit)))
    }

    func teamMemberships(tenant: TenantID, user: UserID, after: TeamPageKey?, limit: Int) -> [TeamMembership] {
        let memberships = state.teamMembers.values.compactMap { member -> TeamMembership? in
            guard member.tenantID == tenant, member.userID == user, let team = team(tenant: tenant, id: member.teamID),
                after?.precedes(team) ?? true
            else { return nil }
            return TeamMembership(team: team, role: member.role)
        }
        return Array(memberships.sorted { Self.teamOrder($0.team, $1.team) }.prefix(max(0, limit)))
    }

    func teamMember(tenant: TenantID, team: TeamID, user: UserID) -> TeamMember? {
        guard let member = state.teamMembers[TeamMemberKey(team: team, user: user)], member.tenantID == tenant else {
            return nil
        }
        return member
    }

    func teamMembers(tenant: TenantID, team: TeamID) -> [TeamMember] {
        state.teamMembers.values.filter { $0.tenantID == tenant && $0.teamID == team }
            .sorted { $0.userID.rawValue < $1.userID.rawValue }
    }

    func teamInvitation(tenant: TenantID, id: InvitationID) -> TeamInvitation? {
        guard let invitation = state.teamInvitations[id], invitation.tenantID == tenant else { return nil }
        return invitation
    }

    func teamInvitation(tenant: TenantID, tokenHash: [UInt8]) -> TeamInvitation? {
        state.teamInvitations.values.first { $0.tenantID == tenant && $0.tokenHash == tokenHash }
    }

    func openTeamInvitations(tenant: TenantID, team: TeamID) -> [TeamInvitation] {
        state.teamInvitations.values.filter { $0.tenantID == tenant && $0.teamID == team && $0.isOpen }
            .sorted { ($1.createdAt, $0.id.rawValue) < ($0.createdAt, $1.id.rawValue) }
    }

    func insert(_ team: Team) { state.teams[team.id] = team }

    func renameTeam(tenant: TenantID, id: TeamID, name: String) -> Bool {
        guard team(tenant: tenant, id: id) != nil else { return false }
        state.teams[id]?.name = name
        return true
    }

    func deleteTeam(tenant: TenantID, id: TeamID) -> Bool {
        guard team(tenant: tenant, id: id) != nil else { return false }
        state.teams.removeValue(forKey: id)
        state.teamMembers = state.teamMembers.filter { $0.key.team != id }
        state.teamInvitations = state.teamInvitations.filter { $0.value.teamID != id }
        return true
    }

    func insert(_ member: TeamMember) throws {
        let key = TeamMemberKey(team: member.teamID, user: member.userID)
        guard state.teamMembers[key] == nil else { throw DomainError.alreadyMember }
        state.teamMembers[key] = member
    }

    func setTeamRole(tenant: TenantID, team: TeamID, user: UserID, role: TeamRole) -> Bool {
        guard teamMember(tenant: tenant, team: team, user: user) != nil else { return false }
        state.teamMembers[TeamMemberKey(team: team, user: user)]?.role = role
        return true
    }

    func deleteTeamMember(tenant: TenantID, team: TeamID, user: UserID) -> Bool {
        guard teamMember(tenant: tenant, team: team, user: user) != nil else { return false }
        state.teamMembers.removeValue(forKey: TeamMemberKey(team: team, user: user))
        return true
    }

    func insert(_ invitation: TeamInvitation) { state.teamInvitations[invitation.id] = invitation }

    func revokeTeamInvitation(tenant: TenantID, id: InvitationID, at: Timestamp) -> Bool {
        guard let invitation = teamInvitation(tenant: tenant, id: id), invitation.isOpen else { return false }
        state.teamInvitations[id]?.revokedAt = at
        return true
    }

    func acceptTeamInvitation(tenant: TenantID, tokenHash: [UInt8], user: UserID, at: Timestamp) -> TeamInvitation? {
        guard var invitation = teamInvitation(tenant: tenant, tokenHash: tokenHash), invitation.isPending(at: at) else {
            return nil
        }
        invitation.acceptedAt = at
        invitation.acceptedBy = user
        state.teamInvitations[invitation.id] = invitation
        return invitation
    }

    /// (name, id) by UTF-8 bytes, as SQLite's BINARY collation sorts.
    static func teamOrder(_ lhs: Team, _ rhs: Team) -> Bool {
        TeamPageKey(name: lhs.name, id: lhs.id).precedes(rhs)
    }
}
