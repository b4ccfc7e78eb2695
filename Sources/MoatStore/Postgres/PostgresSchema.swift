import Foundation
import Logging

/// The account store's schema on PostgreSQL: the same tables, columns,
/// keys and cascades as ``AccountSchema``, migration for migration (same
/// versions, same names), in PostgreSQL's types.
///
/// - Identifiers and other text are `TEXT COLLATE "C"`: ordering and
///   comparison by bytes, as in SQLite, whatever the database's locale.
/// - Times are `BIGINT` milliseconds; booleans `SMALLINT` checked to 0/1, so
///   the shared SQL binds and reads them exactly as on SQLite.
/// - Every table carries `tenant_id`; user rows reference
///   `users (tenant_id, id)`, team rows `teams (tenant_id, id)`: a row whose
///   tenant is not its user's or team's is refused. Constraints are
///   immediate, never deferred.
/// - The outbox's sequence comes from the one-row `event_sequence` table,
///   updated in the appending transaction: the row lock serializes event
///   appenders until commit, so sequences are assigned in commit order and
///   a rolled-back append leaves no gap (a PostgreSQL SEQUENCE would do
///   neither, and a consumer could skip a late commit).
/// - `security_log.id` is an identity column: ids increase but a rolled-back
///   or retried insert leaves a gap (paging only needs the order).
public enum PostgresSchema {
    /// Every migration, in version order: the shared ones (same versions
    /// and names as ``AccountSchema``), then the PostgreSQL-only ones
    /// (``postgresOnlyVersions``: the cluster tables of ``version8``).
    public static let migrations: [Migration] = [
        version1, version2, version3, version4, version5, version6, version7, version8,
    ]

    private static let text = "TEXT COLLATE \"C\""

    /// Version 1: every table of ``AccountSchema/version1``.
    public static let version1 = Migration(
        version: 1, name: AccountSchema.version1.name,
        sql: """
            CREATE TABLE tenants (
                id                                \(text) PRIMARY KEY,
                slug                              \(text) NOT NULL UNIQUE,
                name                              \(text) NOT NULL,
                min_password_length               BIGINT NOT NULL DEFAULT 8,
                session_idle_timeout_seconds      BIGINT NOT NULL DEFAULT 1209600,
                session_absolute_lifetime_seconds BIGINT NOT NULL DEFAULT 2592000,
                require_two_factor                SMALLINT NOT NULL DEFAULT 0 CHECK (require_two_factor IN (0, 1)),
                lockout_threshold                 BIGINT NOT NULL DEFAULT 5,
                lockout_base_delay_seconds        BIGINT NOT NULL DEFAULT 60,
                lockout_max_delay_seconds         BIGINT NOT NULL DEFAULT 3600,
                max_sessions_per_user             BIGINT NOT NULL DEFAULT 0,
                created_at                        BIGINT NOT NULL
            );

            CREATE TABLE users (
                id                  \(text) PRIMARY KEY,
                tenant_id           \(text) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                email               \(text) NOT NULL,
                password_hash       \(text) NOT NULL,
                role                \(text) NOT NULL,
                status              \(text) NOT NULL,
                created_at          BIGINT NOT NULL,
                password_changed_at BIGINT NOT NULL,
                failed_sign_ins     BIGINT NOT NULL DEFAULT 0,
                locked_until        BIGINT,
                two_factor_enabled  SMALLINT NOT NULL DEFAULT 0 CHECK (two_factor_enabled IN (0, 1)),
                UNIQUE (tenant_id, email),
                UNIQUE (tenant_id, id)
            );

            CREATE TABLE sessions (
                id                      \(text) PRIMARY KEY,
                tenant_id               \(text) NOT NULL,
                user_id                 \(text) NOT NULL,
                token_hash              BYTEA NOT NULL UNIQUE,
                user_agent              \(text) NOT NULL,
                ip                      \(text) NOT NULL,
                location                \(text) NOT NULL,
                device_name             \(text) NOT NULL,
                created_at              BIGINT NOT NULL,
                last_active_at          BIGINT NOT NULL,
                absolute_expires_at     BIGINT NOT NULL,
                idle_timeout_seconds    BIGINT NOT NULL,
                second_factor_satisfied SMALLINT NOT NULL CHECK (second_factor_satisfied IN (0, 1)),
                revoked_at              BIGINT,
                revoke_reason           \(text),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX sessions_by_user ON sessions (tenant_id, user_id);

            CREATE TABLE password_resets (
                token_hash BYTEA PRIMARY KEY,
                tenant_id  \(text) NOT NULL,
                user_id    \(text) NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                used_at    BIGINT,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX password_resets_by_user ON password_resets (tenant_id, user_id);

            CREATE TABLE event_sequence (
                id    SMALLINT PRIMARY KEY CHECK (id = 1),
                value BIGINT NOT NULL CHECK (value >= 0)
            );
            INSERT INTO event_sequence (id, value) VALUES (1, 0);

            CREATE TABLE events (
                sequence   BIGINT PRIMARY KEY CHECK (sequence > 0),
                tenant_id  \(text) NOT NULL,
                type       \(text) NOT NULL,
                subject    \(text) NOT NULL,
                payload    BYTEA NOT NULL,
                created_at BIGINT NOT NULL
            );

            CREATE TABLE security_log (
                id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tenant_id  \(text) NOT NULL,
                user_id    \(text) NOT NULL,
                kind       \(text) NOT NULL,
                ip         \(text) NOT NULL,
                user_agent \(text) NOT NULL,
                detail     \(text) NOT NULL,
                created_at BIGINT NOT NULL,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX security_log_by_user ON security_log (tenant_id, user_id, id);

            CREATE TABLE meta (
                key   \(text) PRIMARY KEY,
                value BYTEA NOT NULL
            );
            """)

    /// Version 2: the two-factor tables of ``AccountSchema/version2``.
    public static let version2 = Migration(
        version: 2, name: AccountSchema.version2.name,
        sql: """
            CREATE TABLE two_factor (
                tenant_id       \(text) NOT NULL,
                user_id         \(text) NOT NULL,
                secret          BYTEA NOT NULL,
                key_id          \(text) NOT NULL,
                algorithm       \(text) NOT NULL,
                digits          BIGINT NOT NULL,
                period          BIGINT NOT NULL,
                enabled_at      BIGINT NOT NULL,
                last_used_step  BIGINT,
                failed_attempts BIGINT NOT NULL DEFAULT 0,
                locked_until    BIGINT,
                PRIMARY KEY (tenant_id, user_id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );

            CREATE TABLE two_factor_pending (
                tenant_id  \(text) NOT NULL,
                user_id    \(text) NOT NULL,
                secret     BYTEA NOT NULL,
                key_id     \(text) NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, user_id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );

            CREATE TABLE recovery_codes (
                tenant_id \(text) NOT NULL,
                user_id   \(text) NOT NULL,
                slot      BIGINT NOT NULL,
                code_hash \(text) NOT NULL,
                used_at   BIGINT,
                PRIMARY KEY (tenant_id, user_id, slot),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );

            CREATE TABLE sign_in_challenges (
                token_hash  BYTEA PRIMARY KEY,
                tenant_id   \(text) NOT NULL,
                user_id     \(text) NOT NULL,
                user_agent  \(text) NOT NULL,
                ip          \(text) NOT NULL,
                location    \(text) NOT NULL,
                device_name \(text) NOT NULL,
                created_at  BIGINT NOT NULL,
                expires_at  BIGINT NOT NULL,
                used_at     BIGINT,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX sign_in_challenges_by_expiry ON sign_in_challenges (tenant_id, expires_at);
            """)

    /// Version 3: the event consumers of ``AccountSchema/version3`` (daemon-wide, no tenant_id).
    public static let version3 = Migration(
        version: 3, name: AccountSchema.version3.name,
        sql: """
            CREATE TABLE event_consumers (
                name           \(text) PRIMARY KEY,
                cursor         BIGINT NOT NULL DEFAULT 0 CHECK (cursor >= 0),
                created_at     BIGINT NOT NULL,
                last_polled_at BIGINT,
                last_acked_at  BIGINT
            );
            """)

    /// Version 4: teams, members and invitations of ``AccountSchema/version4``.
    /// A NULL `invited_by` skips its composite foreign key (MATCH SIMPLE), as in SQLite.
    public static let version4 = Migration(
        version: 4, name: AccountSchema.version4.name,
        sql: """
            CREATE TABLE teams (
                id         \(text) PRIMARY KEY,
                tenant_id  \(text) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                name       \(text) NOT NULL,
                created_at BIGINT NOT NULL,
                UNIQUE (tenant_id, id)
            );
            CREATE INDEX teams_by_name ON teams (tenant_id, name, id);

            CREATE TABLE team_members (
                tenant_id \(text) NOT NULL,
                team_id   \(text) NOT NULL,
                user_id   \(text) NOT NULL,
                role      \(text) NOT NULL,
                joined_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, team_id, user_id),
                FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX team_members_by_user ON team_members (tenant_id, user_id);

            CREATE TABLE team_invitations (
                id          \(text) PRIMARY KEY,
                tenant_id   \(text) NOT NULL,
                team_id     \(text) NOT NULL,
                email       \(text) NOT NULL,
                role        \(text) NOT NULL,
                token_hash  BYTEA NOT NULL UNIQUE,
                invited_by  \(text),
                created_at  BIGINT NOT NULL,
                expires_at  BIGINT NOT NULL,
                accepted_at BIGINT,
                accepted_by \(text),
                revoked_at  BIGINT,
                FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, invited_by) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, accepted_by) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX team_invitations_by_team ON team_invitations (tenant_id, team_id, created_at);
            CREATE INDEX team_invitations_by_inviter ON team_invitations (tenant_id, invited_by);
            CREATE INDEX team_invitations_by_acceptor ON team_invitations (tenant_id, accepted_by);
            """)

    /// Version 5: the deletion grace period of ``AccountSchema/version5``.
    public static let version5 = Migration(
        version: 5, name: AccountSchema.version5.name,
        sql: """
            ALTER TABLE users ADD COLUMN purge_after BIGINT;
            ALTER TABLE tenants ADD COLUMN status \(text) NOT NULL DEFAULT 'active';
            ALTER TABLE tenants ADD COLUMN purge_after BIGINT;
            CREATE INDEX users_due_for_purge ON users (tenant_id, purge_after) WHERE purge_after IS NOT NULL;
            CREATE INDEX tenants_due_for_purge ON tenants (purge_after) WHERE purge_after IS NOT NULL;
            """)

    /// Version 6: failed sign-ins per client address
    /// (``AccountSchema/version6``; daemon-wide, so no `tenant_id`).
    public static let version6 = Migration(
        version: 6, name: AccountSchema.version6.name,
        sql: """
            CREATE TABLE address_failures (
                address      \(text) PRIMARY KEY,
                window_start BIGINT NOT NULL,
                failures     BIGINT NOT NULL CHECK (failures >= 0)
            );
            CREATE INDEX address_failures_by_start ON address_failures (window_start);
            """)

    /// Version 7: the unknown-email lockout (``AccountSchema/version7``).
    public static let version7 = Migration(
        version: 7, name: AccountSchema.version7.name,
        sql: """
            CREATE TABLE unknown_email_failures (
                tenant_id    \(text) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                email        \(text) NOT NULL,
                failures     BIGINT NOT NULL CHECK (failures >= 0),
                locked_until BIGINT,
                updated_at   BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, email)
            );
            CREATE INDEX unknown_email_failures_by_update ON unknown_email_failures (updated_at);
            """)
}

/// Applies migrations on one PostgreSQL connection while holding the
/// session-level advisory lock ``PostgresDatabase/migrationLockKey``: an
/// instance that starts while another migrates waits, then finds the work
/// done. Same bookkeeping and checks as the SQLite migrator
/// (`schema_migrations`, `SCHEMA_TOO_NEW`, `MIGRATION_MISMATCH`,
/// `MIGRATION_FAILED`); each migration commits with its row or not at all
/// (PostgreSQL's DDL is transactional).
enum PostgresMigrator {
    static func migrate(_ connection: PostgresConnection, migrations: [Migration], logger: Logger) throws
        -> MigrationReport
    {
        let known = try Migrator.validate(migrations)
        let db = PostgresQuerying(connection: connection)
        try db.execute("SELECT pg_advisory_lock(?)", [PostgresDatabase.migrationLockKey])
        defer { _ = try? db.execute("SELECT pg_advisory_unlock(?)", [PostgresDatabase.migrationLockKey]) }
        try connection.run(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                name       TEXT COLLATE "C" NOT NULL,
                applied_at TEXT COLLATE "C" NOT NULL
            )
            """)
        let recorded = try db.query("SELECT version, name FROM schema_migrations ORDER BY version", []) {
            (version: try $0.int("version"), name: try $0.string("name"))
        }
        let databaseVersion = recorded.last?.version ?? 0
        let codeVersion = known.last?.version ?? 0
        guard databaseVersion <= codeVersion else {
            throw StoreError(
                .schemaTooNew,
                message: "database schema is at version \(databaseVersion), newer than this build knows (\(codeVersion)); refusing to start")
        }
        let byVersion = Dictionary(known.map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
        for (version, name) in recorded {
            guard let migration = byVersion[version] else {
                throw StoreError(
                    .migrationMismatch, message: "database has migration \(version) (\(name)) that this build does not know")
            }
            guard migration.name == name else {
                throw StoreError(
                    .migrationMismatch,
                    message: "migration \(version) is named \(name) in the database but \(migration.name) in this build")
            }
        }
        let recordedVersions = Set(recorded.map(\.version))
        if let skipped = known.first(where: { $0.version < databaseVersion && !recordedVersions.contains($0.version) }) {
            throw StoreError(
                .migrationMismatch,
                message: "migration \(skipped.version) (\(skipped.name)) is below the database's version \(databaseVersion) but was never applied")
        }
        var applied: [Int] = []
        for migration in known where migration.version > databaseVersion {
            do {
                try connection.run("BEGIN")
                try connection.run(migration.sql)
                try db.execute(
                    """
                    INSERT INTO schema_migrations (version, name, applied_at)
                    VALUES (?, ?, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                    """,
                    [migration.version, migration.name])
                try connection.run("COMMIT")
            } catch {
                try? connection.run("ROLLBACK")
                let underlying = error as? StoreError
                logger.error(
                    "migration failed; schema left at previous version",
                    metadata: [
                        "version": "\(migration.version)", "name": "\(migration.name)",
                        "previous_version": "\(applied.last ?? databaseVersion)", "error": "\(error)",
                    ])
                if underlying?.reason == .unavailable, let underlying { throw underlying }
                throw StoreError(
                    .migrationFailed,
                    message: "migration \(migration.version) (\(migration.name)) failed and was rolled back: \(underlying?.message ?? "\(error)")")
            }
            applied.append(migration.version)
            logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
        }
        return MigrationReport(previousVersion: databaseVersion, currentVersion: applied.last ?? databaseVersion, applied: applied)
    }
}
