extension AccountSchema {
    /// Version 7: the sign-in lockout of emails with no account, so it
    /// survives a restart (and, on PostgreSQL, is shared by every moatd).
    ///
    /// One row per (tenant, email) that failed; the store forgets the least
    /// recently failed past a capacity (`unknown_email_failures_by_update`),
    /// which bounds the table. Cascades with its tenant.
    public static let version7 = Migration(
        version: 7, name: "unknown_email_failures",
        sql: """
            CREATE TABLE unknown_email_failures (
                tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                email        TEXT NOT NULL,
                failures     INTEGER NOT NULL CHECK (failures >= 0),
                locked_until INTEGER,
                updated_at   INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, email)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX unknown_email_failures_by_update ON unknown_email_failures (updated_at);
            """)
}
