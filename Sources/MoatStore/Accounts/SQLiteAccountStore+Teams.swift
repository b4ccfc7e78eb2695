import MoatCore

// The team methods of the account store, in SQL. Every query is scoped by
// `tenant_id`; orderings and conditional updates match MemoryAccountStore.

extension SQLiteAccountReading {
    func team(tenant: TenantID, id: TeamID) throws -> Team? {
        try db.queryFirst(
            "SELECT \(TeamColumns.team) FROM teams WHERE tenant_id = ? AND id = ?", [tenant.rawValue, id.rawValue],
            TeamRowDecoder.team)
    }

    func teams(tenant: TenantID, after: TeamPageKey?, limit: Int) throws -> [Team] {
        if let after {
            return try db.query(
                """
                SELECT \(TeamColumns.team) FROM teams
                WHERE tenant_id = ? AND (name, id) > (?, ?) ORDER BY name, id LIMIT ?
                """,
                [tenant.rawValue, after.name, after.id.rawValue, Self.clamp(limit)], TeamRowDecoder.team)
        }
        return try db.query(
            "SELECT \(TeamColumns.team) FROM teams WHERE tenant_id = ? ORDER BY name, id LIMIT ?",
            [tenant.rawValue, Self.clamp(limit)], TeamRowDecoder.team)
    }

    func teamMemberships(tenant: TenantID, user: UserID, after: TeamPageKey?, limit: Int) throws -> [TeamMembership] {
        try db.query(
            """
            SELECT t.id AS id, t.tenant_id AS tenant_id, t.name AS name, t.created_at AS created_at, m.role AS role
            FROM team_members m JOIN teams t ON t.tenant_id = m.tenant_id AND t.id = m.team_id
            WHERE m.tenant_id = ?1 AND m.user_id = ?2 AND (CAST(?3 AS TEXT) IS NULL OR (t.name, t.id) > (?3, ?4))
            ORDER BY t.name, t.id LIMIT ?5
            """,
            [tenant.rawValue, user.rawValue, after?.name, after?.id.rawValue, Self.clamp(limit)]
        ) { row in
            TeamMembership(
                team: try TeamRowDecoder.team(row),
                role: try TeamRowDecoder.enumeration(TeamRole.self, row, "role", table: "team_members"))
        }
    }

    func teamMember(tenant: TenantID, team: TeamID, user: UserID) throws -> TeamMember? {
        try db.queryFirst(
            "SELECT \(TeamColumns.member) FROM team_members WHERE tenant_id = ? AND team_id = ? AND user_id = ?",
            [tenant.rawValue, team.rawValue, user.rawValue], TeamRowDecoder.member)
    }

    func teamMembers(tenant: TenantID, team: TeamID) throws -> [TeamMember] {
        try db.query(
            "SELECT \(TeamColumns.member) FROM team_members WHERE tenant_id = ? AND team_id = ? ORDER BY user_id",
            [tenant.rawValue, team.rawValue], TeamRowDecoder.member)
    }

    func teamInvitation(tenant: TenantID, id: InvitationID) throws -> TeamInvitation? {
        try db.queryFirst(
            "SELECT \(TeamColumns.invitation) FROM team_invitations WHERE tenant_id = ? AND id = ?",
            [tenant.rawValue, id.rawValue], TeamRowDecoder.invitation)
    }

    func teamInvitation(tenant: TenantID, tokenHash: [UInt8]) throws -> TeamInvitation? {
        try db.queryFirst(
            "SELECT \(TeamColumns.invitation) FROM team_invitations WHERE tenant_id = ? AND token_hash = ?",
            [tenant.rawValue, tokenHash], TeamRowDecoder.invitation)
    }

    func openTeamInvitations(tenant: TenantID, team: TeamID) throws -> [TeamInvitation] {
        try db.query(
            """
            SELECT \(TeamColumns.invitation) FROM team_invitations
            WHERE tenant_id = ? AND team_id = ? AND accepted_at IS NULL AND revoked_at IS NULL
            ORDER BY created_at DESC, id
            """,
            [tenant.rawValue, team.rawValue], TeamRowDecoder.invitation)
    }
}

extension SQLiteAccountWriting {
    func insert(_ team: Team) throws {
        try db.execute(
            "INSERT INTO teams (\(TeamColumns.team)) VALUES (?, ?, ?, ?)",
            [team.id.rawValue, team.tenantID.rawValue, team.name, team.createdAt.milliseconds])
    }

    func renameTeam(tenant: TenantID, id: TeamID, name: String) throws -> Bool {
        try db.execute(
            "UPDATE teams SET name = ? WHERE tenant_id = ? AND id = ?", [name, tenant.rawValue, id.rawValue]) > 0
    }

    func deleteTeam(tenant: TenantID, id: TeamID) throws -> Bool {
        // Memberships and invitations go with it (ON DELETE CASCADE).
        try db.execute("DELETE FROM teams WHERE tenant_id = ? AND id = ?", [tenant.rawValue, id.rawValue]) > 0
    }

    func insert(_ member: TeamMember) throws {
        do {
            try db.execute(
                "INSERT INTO team_members (\(TeamColumns.member)) VALUES (?, ?, ?, ?, ?)",
                [
                    member.tenantID.rawValue, member.teamID.rawValue, member.userID.rawValue, member.role.rawValue,
                    member.joinedAt.milliseconds,
                ])
        } catch let error as StoreError where error.isUniqueViolation {
            throw DomainError.alreadyMember
        }
    }

    func setTeamRole(tenant: TenantID, team: TeamID, user: UserID, role: TeamRole) throws -> Bool {
        try db.execute(
            "UPDATE team_members SET role = ? WHERE tenant_id = ? AND team_id = ? AND user_id = ?",
            [role.rawValue, tenant.rawValue, team.rawValue, user.rawValue]) > 0
    }

    func deleteTeamMember(tenant: TenantID, team: TeamID, user: UserID) throws -> Bool {
        try db.execute(
            "DELETE FROM team_members WHERE tenant_id = ? AND team_id = ? AND user_id = ?",
            [tenant.rawValue, team.rawValue, user.rawValue]) > 0
    }

    func insert(_ invitation: TeamInvitation) throws {
        try db.execute(
            "INSERT INTO team_invitations (\(TeamColumns.invitation)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                invitation.id.rawValue, invitation.tenantID.rawValue, invitation.teamID.rawValue, invitation.email,
                invitation.role.rawValue, invitation.tokenHash, invitation.invitedBy?.rawValue,
                invitation.createdAt.milliseconds, invitation.expiresAt.milliseconds,
                invitation.acceptedAt?.milliseconds, invitation.acceptedBy?.rawValue, invitation.revokedAt?.milliseconds,
            ])
    }

    func revokeTeamInvitation(tenant: TenantID, id: InvitationID, at: Timestamp) throws -> Bool {
        try db.execute(
            """
            UPDATE team_invitations SET revoked_at = ?
            WHERE tenant_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL
            """,
            [at.milliseconds, tenant.rawValue, id.rawValue]) > 0
    }

    func acceptTeamInvitation(tenant: TenantID, tokenHash: [UInt8], user: UserID, at: Timestamp) throws
        -> TeamInvitation?
    {
        // One statement: the check and the mark cannot be separated.
        try db.queryFirst(
            """
            UPDATE team_invitations SET accepted_at = ?1, accepted_by = ?2
            WHERE tenant_id = ?3 AND token_hash = ?4 AND accepted_at IS NULL AND revoked_at IS NULL
              AND expires_at > ?1
            RETURNING \(TeamColumns.invitation)
            """,
            [at.milliseconds, user.rawValue, tenant.rawValue, tokenHash], TeamRowDecoder.invitation)
    }
}

/// The column lists, in the order the INSERTs bind them.
private enum TeamColumns {
    static let team = "id, tenant_id, name, created_at"
    static let member = "tenant_id, team_id, user_id, role, joined_at"
    static let invitation = """
        id, tenant_id, team_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, \
        accepted_by, revoked_at
        """
}

/// Rows to team values. Never traps: a value the model cannot hold throws
/// `INVALID_ROW` naming the table and column.
private enum TeamRowDecoder {
    static func team(_ row: some SQLRow) throws -> Team {
        Team(
            id: try id(TeamID.self, row, "id", table: "teams"),
            tenantID: try id(TenantID.self, row, "tenant_id", table: "teams"), name: try row.string("name"),
            createdAt: Timestamp(milliseconds: try row.int64("created_at")))
    }

    static func member(_ row: some SQLRow) throws -> TeamMember {
        TeamMember(
            tenantID: try id(TenantID.self, row, "tenant_id", table: "team_members"),
            teamID: try id(TeamID.self, row, "team_id", table: "team_members"),
            userID: try id(UserID.self, row, "user_id", table: "team_members"),
            role: try enumeration(TeamRole.self, row, "role", table: "team_members"),
            joinedAt: Timestamp(milliseconds: try row.int64("joined_at")))
    }

    static func invitation(_ row: some SQLRow) throws -> TeamInvitation {
        TeamInvitation(
            id: try id(InvitationID.self, row, "id", table: "team_invitations"),
            tenantID: try id(TenantID.self, row, "tenant_id", table: "team_invitations"),
            teamID: try id(TeamID.self, row, "team_id", table: "team_invitations"),
            email: try row.string("email"),
            role: try enumeration(TeamRole.self, row, "role", table: "team_invitations"),
            tokenHash: try row.blob("token_hash"),
            invitedBy: try optionalID(UserID.self, row, "invited_by", table: "team_invitations"),
            createdAt: Timestamp(milliseconds: try row.int64("created_at")),
            expiresAt: Timestamp(milliseconds: try row.int64("expires_at")),
            acceptedAt: try row.optionalInt64("accepted_at").map { Timestamp(milliseconds: $0) },
            acceptedBy: try optionalID(UserID.self, row, "accepted_by", table: "team_invitations"),
            revokedAt: try row.optionalInt64("revoked_at").map { Timestamp(milliseconds: $0) })
    }

    static func id<ID: PrefixedID>(_ type: ID.Type, _ row: some SQLRow, _ column: String, table: String) throws -> ID {
        let text = try row.string(column)
        guard let id = ID(text) else { throw invalid(table, column, "not a well-formed \(ID.prefix)… identifier") }
        return id
    }

    static func optionalID<ID: PrefixedID>(_ type: ID.Type, _ row: some SQLRow, _ column: String, table: String) throws -> ID? {
        guard let text = try row.optionalString(column) else { return nil }
        guard let id = ID(text) else { throw invalid(table, column, "not a well-formed \(ID.prefix)… identifier") }
        return id
    }

    static func enumeration<Value: RawRepresentable>(
        _ type: Value.Type, _ row: some SQLRow, _ column: String, table: String
    ) throws -> Value where Value.RawValue == String {
        guard let value = Value(rawValue: try row.string(column)) else {
            throw invalid(table, column, "not a known \(Value.self)")
        }
        return value
    }

    private static func invalid(_ table: String, _ column: String, _ problem: String) -> StoreError {
        StoreError(.invalidRow, message: "\(table).\(column): \(problem)")
    }
}
