/// The account store's schema: its migrations, applied in order at start-up.
///
/// Conventions of every migration here:
/// - `STRICT` tables: SQLite refuses a value of the wrong type instead of
///   storing it, so a row read back always has the storage class the store
///   expects.
/// - Identifiers are the prefixed ids as TEXT (`tn_…`, `us_…`, `se_…`).
/// - Times are INTEGER milliseconds since the Unix epoch (`Timestamp`).
/// - Booleans are INTEGER 0/1, checked.
/// - Enums (role, status, security-log kind) are their raw TEXT values,
///   deliberately *not* checked by the schema: a new case then needs no table
///   rebuild, and the store rejects an unknown value when it reads the row.
/// - Every table carries `tenant_id` (`tenants` is keyed by its own `id`);
///   only `meta`, `event_consumers` (readers of every tenant's events, see
///   `version3`), `address_failures` (counted across tenants, see `version6`)
///   and the migrator's `schema_migrations` hold daemon-wide facts.
/// - Rows that belong to a user reference it by `(tenant_id, user_id)`, so the
///   schema itself refuses a session, reset token or log line whose tenant is
///   not its user's tenant. Foreign keys are immediate (checked per
///   statement), never deferred: a deferred violation would fail a whole
///   group-commit batch at COMMIT.
public enum AccountSchema {
    /// Every migration of the account store, in version order.
    public static let migrations: [Migration] = [version1, version2, version3, version4, version5, version6, version7]

    /// The tables the migrations create (the migrator adds
    /// `schema_migrations`; SQLite adds `sqlite_sequence` for the
    /// AUTOINCREMENT tables).
    public static let tables = [
        "tenants", "users", "sessions", "password_resets", "events", "security_log", "meta",
        "two_factor", "two_factor_pending", "recovery_codes", "sign_in_challenges", "event_consumers",
        "teams", "team_members", "team_invitations", "address_failures", "unknown_email_failures",
    ]

    /// Version 1: every table.
    ///
    /// The tenant policy is stored as one column per field rather than as a
    /// JSON or binary blob: each value is typed and visible to operators
    /// (`sqlite3 moat.db 'SELECT slug, require_two_factor FROM tenants'`),
    /// the PostgreSQL store can mirror it column for column, and a new policy
    /// field is an explicit migration (`ADD COLUMN … DEFAULT <documented
    /// default>`) instead of a decoder that must guess what an old blob meant.
    /// Each column's DEFAULT is the documented default of `TenantPolicy`.
    ///
    /// The `events` outbox has no foreign key to `tenants`: an event outlives
    /// the rows it reports on (a tenant's or user's purge must still be
    /// delivered after the rows are gone). Its `sequence` is AUTOINCREMENT, so
    /// a sequence is never reused even after the newest events are deleted;
    /// with the single writer, sequences increase in commit order.
    public static let version1 = Migration(
        version: 1, name: "create_accounts",
        sql: """
            CREATE TABLE tenants (
                id                                TEXT PRIMARY KEY NOT NULL,
                slug                              TEXT NOT NULL UNIQUE,
                name                              TEXT NOT NULL,
                min_password_length               INTEGER NOT NULL DEFAULT 8,
                session_idle_timeout_seconds      INTEGER NOT NULL DEFAULT 1209600,
                session_absolute_lifetime_seconds INTEGER NOT NULL DEFAULT 2592000,
                require_two_factor                INTEGER NOT NULL DEFAULT 0 CHECK (require_two_factor IN (0, 1)),
                lockout_threshold                 INTEGER NOT NULL DEFAULT 5,
                lockout_base_delay_seconds        INTEGER NOT NULL DEFAULT 60,
                lockout_max_delay_seconds         INTEGER NOT NULL DEFAULT 3600,
                max_sessions_per_user             INTEGER NOT NULL DEFAULT 0,
                created_at                        INTEGER NOT NULL
            ) STRICT;

            CREATE TABLE users (
                id                  TEXT PRIMARY KEY NOT NULL,
                tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                email               TEXT NOT NULL,
                password_hash       TEXT NOT NULL,
                role                TEXT NOT NULL,
                status              TEXT NOT NULL,
                created_at          INTEGER NOT NULL,
                password_changed_at INTEGER NOT NULL,
                failed_sign_ins     INTEGER NOT NULL DEFAULT 0,
                locked_until        INTEGER,
                two_factor_enabled  INTEGER NOT NULL DEFAULT 0 CHECK (two_factor_enabled IN (0, 1)),
                UNIQUE (tenant_id, email),
                -- The parent key of the (tenant_id, user_id) references below.
                UNIQUE (tenant_id, id)
            ) STRICT;

            CREATE TABLE sessions (
                id                      TEXT PRIMARY KEY NOT NULL,
                tenant_id               TEXT NOT NULL,
                user_id                 TEXT NOT NULL,
                token_hash              BLOB NOT NULL UNIQUE,
                user_agent              TEXT NOT NULL,
                ip                      TEXT NOT NULL,
                location                TEXT NOT NULL,
                device_name             TEXT NOT NULL,
                created_at              INTEGER NOT NULL,
                last_active_at          INTEGER NOT NULL,
                absolute_expires_at     INTEGER NOT NULL,
                idle_timeout_seconds    INTEGER NOT NULL,
                second_factor_satisfied INTEGER NOT NULL CHECK (second_factor_satisfied IN (0, 1)),
                revoked_at              INTEGER,
                revoke_reason           TEXT,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);

            CREATE TABLE password_resets (
                token_hash BLOB PRIMARY KEY NOT NULL,
                tenant_id  TEXT NOT NULL,
                user_id    TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                used_at    INTEGER,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX password_resets_by_user ON password_resets (tenant_id, user_id);

            CREATE TABLE events (
                sequence   INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant_id  TEXT NOT NULL,
                type       TEXT NOT NULL,
                subject    TEXT NOT NULL,
                payload    BLOB NOT NULL,
                created_at INTEGER NOT NULL
            ) STRICT;

            CREATE TABLE security_log (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant_id  TEXT NOT NULL,
                user_id    TEXT NOT NULL,
                kind       TEXT NOT NULL,
                ip         TEXT NOT NULL,
                user_agent TEXT NOT NULL,
                detail     TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX security_log_by_user ON security_log (tenant_id, user_id, id);

            CREATE TABLE meta (
                key   TEXT PRIMARY KEY NOT NULL,
                value BLOB NOT NULL
            ) STRICT;
            """)
}
