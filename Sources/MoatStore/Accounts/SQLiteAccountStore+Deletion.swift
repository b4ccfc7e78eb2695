import MoatCore

extension SQLiteAccountReading {
    func activeOwnerCount(tenant: TenantID, except: UserID?) throws -> Int {
        try db.queryFirst(
            """
            SELECT count(*) AS n FROM users
            WHERE tenant_id = ? AND role = 'owner' AND status = 'active' AND (CAST(? AS TEXT) IS NULL OR id <> ?)
            """,
            [tenant.rawValue, except?.rawValue, except?.rawValue]
        ) { try $0.int("n") } ?? 0
    }

    func usersDueForPurge(tenant: TenantID, at: Timestamp, limit: Int) throws -> [User] {
        try db.query(
            """
            SELECT \(AccountColumns.user) FROM users
            WHERE tenant_id = ? AND status = 'pending_deletion' AND purge_after IS NOT NULL AND purge_after <= ?
            ORDER BY purge_after, id LIMIT ?
            """,
            [tenant.rawValue, at.milliseconds, max(0, limit)], RowDecoder.user)
    }

    func tenantsDueForPurge(at: Timestamp, limit: Int) throws -> [Tenant] {
        try db.query(
            """
            SELECT \(AccountColumns.tenant) FROM tenants
            WHERE status = 'pending_deletion' AND purge_after IS NOT NULL AND purge_after <= ?
            ORDER BY purge_after, id LIMIT ?
            """,
            [at.milliseconds, max(0, limit)], RowDecoder.tenant)
    }

    func userCount(tenant: TenantID) throws -> Int {
        try db.queryFirst("SELECT count(*) AS n FROM users WHERE tenant_id = ?", [tenant.rawValue]) { try $0.int("n") }
            ?? 0
    }
}

extension SQLiteAccountWriting {
    func deleteUser(tenant: TenantID, id: UserID) throws -> Bool {
        // Every row that references the user goes with it (ON DELETE CASCADE).
        guard try db.execute("DELETE FROM users WHERE tenant_id = ? AND id = ?", [tenant.rawValue, id.rawValue]) == 1
        else { return false }
        marks.user(id)
        return true
    }

    func deleteTenant(id: TenantID) throws -> Bool {
        guard try db.execute("DELETE FROM tenants WHERE id = ?", [id.rawValue]) == 1 else { return false }
        // Every session and user of the tenant went: drop everything.
        marks.tenant(id)
        marks.everything()
        return true
    }

    func revokeTenantSessions(tenant: TenantID, at: Timestamp, reason: String) throws -> [(SessionID, UserID)] {
        let rows = try db.query(
            """
            UPDATE sessions SET revoked_at = ?, revoke_reason = ?
            WHERE tenant_id = ? AND revoked_at IS NULL
            RETURNING id, user_id
            """,
            [at.milliseconds, reason, tenant.rawValue]
        ) { row in
            (
                try RowDecoder.id(SessionID.self, row, "id", table: "sessions"),
                try RowDecoder.id(UserID.self, row, "user_id", table: "sessions")
            )
        }
        for (_, user) in rows { marks.user(user) }
        return rows.sorted { $0.0.rawValue < $1.0.rawValue }
    }
}

