extension AccountSchema {
    /// Version 2: two-factor authentication.
    ///
    /// - `two_factor`: one row per user with 2FA on. `secret` is the
    ///   AES-256-GCM box (`nonce || ciphertext || tag`) with the tenant and
    ///   user ids as associated data, so a row copied to another user fails
    ///   to decrypt; `key_id` names the key that sealed it (rotation).
    ///   `last_used_step` is the replay guard, advanced only by a
    ///   conditional UPDATE (`… WHERE last_used_step IS NULL OR
    ///   last_used_step < ?`).
    /// - `two_factor_pending`: at most one unconfirmed enrolment per user,
    ///   sealed like the active secret, with its expiry.
    /// - `recovery_codes`: ten Argon2id hashes per user, each used once.
    /// - `sign_in_challenges`: the second half of a sign-in, by the SHA-256
    ///   of its token, single use, with the client details the session
    ///   will get.
    public static let version2 = Migration(
        version: 2, name: "two_factor",
        sql: """
            CREATE TABLE two_factor (
                tenant_id       TEXT NOT NULL,
                user_id         TEXT NOT NULL,
                secret          BLOB NOT NULL,
                key_id          TEXT NOT NULL,
                algorithm       TEXT NOT NULL,
                digits          INTEGER NOT NULL,
                period          INTEGER NOT NULL,
                enabled_at      INTEGER NOT NULL,
                last_used_step  INTEGER,
                failed_attempts INTEGER NOT NULL DEFAULT 0,
                locked_until    INTEGER,
                PRIMARY KEY (tenant_id, user_id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;

            CREATE TABLE two_factor_pending (
                tenant_id  TEXT NOT NULL,
                user_id    TEXT NOT NULL,
                secret     BLOB NOT NULL,
                key_id     TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, user_id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;

            CREATE TABLE recovery_codes (
                tenant_id TEXT NOT NULL,
                user_id   TEXT NOT NULL,
                slot      INTEGER NOT NULL,
                code_hash TEXT NOT NULL,
                used_at   INTEGER,
                PRIMARY KEY (tenant_id, user_id, slot),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;

            CREATE TABLE sign_in_challenges (
                token_hash  BLOB PRIMARY KEY NOT NULL,
                tenant_id   TEXT NOT NULL,
                user_id     TEXT NOT NULL,
                user_agent  TEXT NOT NULL,
                ip          TEXT NOT NULL,
                location    TEXT NOT NULL,
                device_name TEXT NOT NULL,
                created_at  INTEGER NOT NULL,
                expires_at  INTEGER NOT NULL,
                used_at     INTEGER,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX sign_in_challenges_by_expiry ON sign_in_challenges (tenant_id, expires_at);
            """)
}
