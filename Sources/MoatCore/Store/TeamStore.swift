/// Team queries, inside a transaction. Part of `AccountStoreReader`.
///
/// Every method takes the tenant and matches it: a team, member or
/// invitation of another tenant is simply not there.
public protocol TeamStoreReader {
    func team(tenant: TenantID, id: TeamID) throws -> Team?
    /// The tenant's teams ordered by (name, id), after `after` (exclusive).
    func teams(tenant: TenantID, after: TeamPageKey?, limit: Int) throws -> [Team]
    /// The teams the user is a member of, with their role, ordered by
    /// (name, id), after `after` (exclusive).
    func teamMemberships(tenant: TenantID, user: UserID, after: TeamPageKey?, limit: Int) throws -> [TeamMembership]

    func teamMember(tenant: TenantID, team: TeamID, user: UserID) throws -> TeamMember?
    /// Every member of the team, ordered by user id.
    func teamMembers(tenant: TenantID, team: TeamID) throws -> [TeamMember]

    func teamInvitation(tenant: TenantID, id: InvitationID) throws -> TeamInvitation?
    func teamInvitation(tenant: TenantID, tokenHash: [UInt8]) throws -> TeamInvitation?
    /// The team's invitations neither accepted nor revoked (expired ones
    /// included; callers judge expiry with their clock), newest first (then
    /// by id).
    func openTeamInvitations(tenant: TenantID, team: TeamID) throws -> [TeamInvitation]
}

/// Team changes, inside a write transaction. Part of `AccountStoreWriter`.
public protocol TeamStoreWriter: TeamStoreReader {
    func insert(_ team: Team) throws
    /// Sets the name; false if the team is not there.
    func renameTeam(tenant: TenantID, id: TeamID, name: String) throws -> Bool
    /// Deletes the team with its memberships and invitations; false if it
    /// was not there.
    func deleteTeam(tenant: TenantID, id: TeamID) throws -> Bool

    /// Throws ALREADY_EXISTS (`ALREADY_MEMBER`) if the user is a member.
    func insert(_ member: TeamMember) throws
    /// Sets a member's role; false if not a member.
    func setTeamRole(tenant: TenantID, team: TeamID, user: UserID, role: TeamRole) throws -> Bool
    /// Ends a membership; false if not a member.
    func deleteTeamMember(tenant: TenantID, team: TeamID, user: UserID) throws -> Bool

    func insert(_ invitation: TeamInvitation) throws
    /// Revokes one open invitation; false if it was not open (or not there).
    func revokeTeamInvitation(tenant: TenantID, id: InvitationID, at: Timestamp) throws -> Bool
    /// Marks the invitation accepted by `user` if it is open and unexpired
    /// at `at`, and returns it; nil otherwise. Atomic: one invitation, one
    /// use.
    func acceptTeamInvitation(tenant: TenantID, tokenHash: [UInt8], user: UserID, at: Timestamp) throws
        -> TeamInvitation?
}

extension DomainError {
    /// The store's answer to adding a member twice.
    public static let alreadyMember = DomainError(.alreadyExists, .alreadyMember, "the user is already a member of the team")
}
