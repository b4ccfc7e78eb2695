import MoatCore

extension SQLiteAccountWriting {
    func touchSessions(_ touches: [SessionCache.Touch]) throws {
        for touch in touches {
            try db.execute(
                """
                UPDATE sessions SET last_active_at = ?
                WHERE tenant_id = ? AND id = ? AND last_active_at < ?
                """,
                [touch.at.milliseconds, touch.tenantID.rawValue, touch.sessionID.rawValue, touch.at.milliseconds])
        }
    }

    func deleteEndedSessions(tenant: TenantID, endedBefore: Timestamp) throws -> Int {
        try db.execute(
            """
            DELETE FROM sessions
            WHERE tenant_id = ?1
              AND (revoked_at < ?2
                   OR absolute_expires_at < ?2
                   OR last_active_at + idle_timeout_seconds * 1000 < ?2)
            """,
            [tenant.rawValue, endedBefore.milliseconds])
    }
}

extension SQLiteAccountWriting {
    func discardPasswordResets(tenant: TenantID, user: UserID, at: Timestamp) throws {
        try db.execute(
            "UPDATE password_resets SET used_at = ? WHERE tenant_id = ? AND user_id = ? AND used_at IS NULL",
            [at.milliseconds, tenant.rawValue, user.rawValue])
    }
}
