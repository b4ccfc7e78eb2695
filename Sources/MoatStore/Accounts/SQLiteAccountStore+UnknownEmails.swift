import MoatCore

/// The unknown-email lockout (table `unknown_email_failures`), in the SQL
/// both backends accept.
extension SQLiteAccountReading {
    func unknownEmailLockout(tenant: TenantID, email: String) throws -> Lockout? {
        try db.queryFirst(
            "SELECT failures, locked_until FROM unknown_email_failures WHERE tenant_id = ? AND email = ?",
            [tenant.rawValue, email]
        ) { row in
            Lockout(
                failures: try row.int("failures"),
                lockedUntil: try row.optionalInt64("locked_until").map { Timestamp(milliseconds: $0) })
        }
    }
}

extension SQLiteAccountWriting {
    func setUnknownEmailLockout(tenant: TenantID, email: String, _ lockout: Lockout, at: Timestamp, capacity: Int)
        throws
    {
        if lockout == Lockout() {
            try db.execute(
                "DELETE FROM unknown_email_failures WHERE tenant_id = ? AND email = ?", [tenant.rawValue, email])
            return
        }
        let updated = try db.execute(
            """
            UPDATE unknown_email_failures SET failures = ?, locked_until = ?, updated_at = ?
            WHERE tenant_id = ? AND email = ?
            """,
            [lockout.failures, lockout.lockedUntil?.milliseconds, at.milliseconds, tenant.rawValue, email])
        guard updated == 0, try self.tenant(id: tenant) != nil else { return }
        // A new email: make room first, least recently failed out.
        let held = try db.queryFirst("SELECT count(*) AS n FROM unknown_email_failures", []) { try $0.int("n") } ?? 0
        let excess = held - max(1, capacity) + 1
        if excess > 0 {
            try db.execute(
                """
                DELETE FROM unknown_email_failures WHERE (tenant_id, email) IN (
                    SELECT tenant_id, email FROM unknown_email_failures ORDER BY updated_at, tenant_id, email LIMIT ?)
                """,
                [excess])
        }
        try db.execute(
            """
            INSERT INTO unknown_email_failures (tenant_id, email, failures, locked_until, updated_at)
            VALUES (?, ?, ?, ?, ?)
            """,
            [tenant.rawValue, email, lockout.failures, lockout.lockedUntil?.milliseconds, at.milliseconds])
    }
}
