import MoatCore

extension SQLiteAccountWriting {
    /// Rows are updated in one fixed order (tenant, then session id), so
    /// that two instances flushing overlapping touches on one PostgreSQL
    /// wait for each other instead of deadlocking (which PostgreSQL only
    /// detects after `deadlock_timeout`, a second, while a revoking write
    /// on one of those rows waits behind them).
    func touchSessions(_ touches: [SessionCache.Touch]) throws {
        for touch in Self.lockOrder(touches) {
            try db.execute(
                """
                UPDATE sessions SET last_active_at = ?
                WHERE tenant_id = ? AND id = ? AND last_active_at < ?
                """,
                [touch.at.milliseconds, touch.tenantID.rawValue, touch.sessionID.rawValue, touch.at.milliseconds])
        }
    }

    /// `touches` sorted by tenant, then session id.
    static func lockOrder(_ touches: [SessionCache.Touch]) -> [SessionCache.Touch] {
        touches.sorted { ($0.tenantID.rawValue, $0.sessionID.rawValue) < ($1.tenantID.rawValue, $1.sessionID.rawValue) }
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
