extension AccountSchema {
    /// Version 5: account and tenant deletion with a grace period.
    ///
    /// `users.purge_after` and `tenants.purge_after` hold when a pending
    /// deletion becomes final (NULL unless pending); `tenants.status` is
    /// `active` or `pending_deletion` (the user status already has
    /// `pending_deletion`). The purge job finds due rows through the two
    /// partial indexes, which hold only pending deletions.
    public static let version5 = Migration(
        version: 5, name: "deletion_grace_period",
        sql: """
            ALTER TABLE users ADD COLUMN purge_after INTEGER;
            ALTER TABLE tenants ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
            ALTER TABLE tenants ADD COLUMN purge_after INTEGER;
            CREATE INDEX users_due_for_purge ON users (tenant_id, purge_after) WHERE purge_after IS NOT NULL;
            CREATE INDEX tenants_due_for_purge ON tenants (purge_after) WHERE purge_after IS NOT NULL;
            """)
}
