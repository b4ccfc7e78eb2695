extension AccountSchema {
    /// Version 4: teams, their members and invitations.
    ///
    /// Every row carries `tenant_id` and references its team and users by
    /// `(tenant_id, …)`, so the schema refuses a membership or invitation whose
    /// team or user is of another tenant. Deleting a team deletes its
    /// memberships and invitations; deleting a user deletes their memberships,
    /// the invitations they sent and the ones they accepted, in the same
    /// statement (the purge of an account needs nothing team-specific).
    /// `invited_by` is NULL for an administrator caller (a NULL column makes
    /// SQLite skip that foreign key). The invitation token is stored only as
    /// its SHA-256.
    public static let version4 = Migration(
        version: 4, name: "create_teams",
        sql: """
            CREATE TABLE teams (
                id         TEXT PRIMARY KEY NOT NULL,
                tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                name       TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                -- The parent key of the (tenant_id, team_id) references below.
                UNIQUE (tenant_id, id)
            ) STRICT;
            CREATE INDEX teams_by_name ON teams (tenant_id, name, id);

            CREATE TABLE team_members (
                tenant_id TEXT NOT NULL,
                team_id   TEXT NOT NULL,
                user_id   TEXT NOT NULL,
                role      TEXT NOT NULL,
                joined_at INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, team_id, user_id),
                FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX team_members_by_user ON team_members (tenant_id, user_id);

            CREATE TABLE team_invitations (
                id          TEXT PRIMARY KEY NOT NULL,
                tenant_id   TEXT NOT NULL,
                team_id     TEXT NOT NULL,
                email       TEXT NOT NULL,
                role        TEXT NOT NULL,
                token_hash  BLOB NOT NULL UNIQUE,
                invited_by  TEXT,
                created_at  INTEGER NOT NULL,
                expires_at  INTEGER NOT NULL,
                accepted_at INTEGER,
                accepted_by TEXT,
                revoked_at  INTEGER,
                FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, invited_by) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, accepted_by) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX team_invitations_by_team ON team_invitations (tenant_id, team_id, created_at);
            CREATE INDEX team_invitations_by_inviter ON team_invitations (tenant_id, invited_by);
            CREATE INDEX team_invitations_by_acceptor ON team_invitations (tenant_id, accepted_by);
            """)
}
