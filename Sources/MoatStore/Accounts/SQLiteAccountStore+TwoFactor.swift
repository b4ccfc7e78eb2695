import MoatCore

/// The two-factor reader methods, over a reader connection or the write
/// transaction; every query is scoped by `tenant_id`.
extension SQLiteAccountReading {
    func twoFactor(tenant: TenantID, user: UserID) throws -> TwoFactorCredential? {
        try db.queryFirst(
            "SELECT \(TwoFactorColumns.credential) FROM two_factor WHERE tenant_id = ? AND user_id = ?",
            [tenant.rawValue, user.rawValue], TwoFactorRows.credential)
    }

    func pendingTwoFactor(tenant: TenantID, user: UserID) throws -> PendingTwoFactor? {
        try db.queryFirst(
            "SELECT \(TwoFactorColumns.pending) FROM two_factor_pending WHERE tenant_id = ? AND user_id = ?",
            [tenant.rawValue, user.rawValue], TwoFactorRows.pending)
    }

    func recoveryCodes(tenant: TenantID, user: UserID) throws -> [RecoveryCode] {
        try db.query(
            "SELECT \(TwoFactorColumns.recovery) FROM recovery_codes WHERE tenant_id = ? AND user_id = ? ORDER BY slot",
            [tenant.rawValue, user.rawValue], TwoFactorRows.recovery)
    }

    func signInChallenge(tenant: TenantID, tokenHash: [UInt8]) throws -> SignInChallenge? {
        try db.queryFirst(
            "SELECT \(TwoFactorColumns.challenge) FROM sign_in_challenges WHERE tenant_id = ? AND token_hash = ?",
            [tenant.rawValue, tokenHash], TwoFactorRows.challenge)
    }
}

extension SQLiteAccountWriting {
    func setTwoFactor(_ credential: TwoFactorCredential) throws {
        try db.execute(
            """
            INSERT INTO two_factor (\(TwoFactorColumns.credential)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (tenant_id, user_id) DO UPDATE SET
                secret = excluded.secret, key_id = excluded.key_id, algorithm = excluded.algorithm,
                digits = excluded.digits, period = excluded.period, enabled_at = excluded.enabled_at,
                last_used_step = excluded.last_used_step, failed_attempts = excluded.failed_attempts,
                locked_until = excluded.locked_until
            """,
            [
                credential.tenantID.rawValue, credential.userID.rawValue, credential.sealedSecret.box,
                credential.sealedSecret.keyID, credential.algorithm, credential.digits, credential.period,
                credential.enabledAt.milliseconds, credential.lastUsedStep, credential.failedAttempts,
                credential.lockedUntil?.milliseconds,
            ])
        marks.user(credential.userID)
    }

    func deleteTwoFactor(tenant: TenantID, user: UserID) throws -> Bool {
        let bindings: [any SQLiteBindable] = [tenant.rawValue, user.rawValue]
        try db.execute("DELETE FROM two_factor_pending WHERE tenant_id = ? AND user_id = ?", bindings)
        try db.execute("DELETE FROM recovery_codes WHERE tenant_id = ? AND user_id = ?", bindings)
        guard try db.execute("DELETE FROM two_factor WHERE tenant_id = ? AND user_id = ?", bindings) > 0 else {
            return false
        }
        marks.user(user)
        return true
    }

    func advanceTwoFactorStep(tenant: TenantID, user: UserID, step: Int64) throws -> Bool {
        // One statement: the comparison and the update cannot be separated,
        // so two sign-ins with the same code cannot both pass.
        try db.execute(
            """
            UPDATE two_factor SET last_used_step = ?1, failed_attempts = 0, locked_until = NULL
            WHERE tenant_id = ?2 AND user_id = ?3 AND (last_used_step IS NULL OR last_used_step < ?1)
            """,
            [step, tenant.rawValue, user.rawValue]) == 1
    }

    func setTwoFactorAttempts(tenant: TenantID, user: UserID, failures: Int, lockedUntil: Timestamp?) throws {
        try db.execute(
            "UPDATE two_factor SET failed_attempts = ?, locked_until = ? WHERE tenant_id = ? AND user_id = ?",
            [failures, lockedUntil?.milliseconds, tenant.rawValue, user.rawValue])
    }

    func setPendingTwoFactor(_ pending: PendingTwoFactor) throws {
        try db.execute(
            """
            INSERT INTO two_factor_pending (\(TwoFactorColumns.pending)) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (tenant_id, user_id) DO UPDATE SET
                secret = excluded.secret, key_id = excluded.key_id, created_at = excluded.created_at,
                expires_at = excluded.expires_at
            """,
            [
                pending.tenantID.rawValue, pending.userID.rawValue, pending.sealedSecret.box,
                pending.sealedSecret.keyID, pending.createdAt.milliseconds, pending.expiresAt.milliseconds,
            ])
    }

    func deletePendingTwoFactor(tenant: TenantID, user: UserID) throws {
        try db.execute(
            "DELETE FROM two_factor_pending WHERE tenant_id = ? AND user_id = ?", [tenant.rawValue, user.rawValue])
    }

    func replaceRecoveryCodes(tenant: TenantID, user: UserID, with codes: [RecoveryCode]) throws {
        try db.execute("DELETE FROM recovery_codes WHERE tenant_id = ? AND user_id = ?", [tenant.rawValue, user.rawValue])
        for code in codes where code.tenantID == tenant && code.userID == user {
            try db.execute(
                "INSERT INTO recovery_codes (\(TwoFactorColumns.recovery)) VALUES (?, ?, ?, ?, ?)",
                [tenant.rawValue, user.rawValue, code.slot, code.codeHash, code.usedAt?.milliseconds])
        }
    }

    func useRecoveryCode(tenant: TenantID, user: UserID, slot: Int, at: Timestamp) throws -> Bool {
        try db.execute(
            """
            UPDATE recovery_codes SET used_at = ?
            WHERE tenant_id = ? AND user_id = ? AND slot = ? AND used_at IS NULL
            """,
            [at.milliseconds, tenant.rawValue, user.rawValue, slot]) == 1
    }

    func insert(_ challenge: SignInChallenge) throws {
        try db.execute(
            "INSERT INTO sign_in_challenges (\(TwoFactorColumns.challenge)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                challenge.tokenHash, challenge.tenantID.rawValue, challenge.userID.rawValue,
                challenge.client.userAgent, challenge.client.ip, challenge.client.location,
                challenge.client.deviceName, challenge.createdAt.milliseconds, challenge.expiresAt.milliseconds,
                challenge.usedAt?.milliseconds,
            ])
    }

    func consumeSignInChallenge(tenant: TenantID, tokenHash: [UInt8], at: Timestamp) throws -> SignInChallenge? {
        try db.queryFirst(
            """
            UPDATE sign_in_challenges SET used_at = ?1
            WHERE tenant_id = ?2 AND token_hash = ?3 AND used_at IS NULL AND expires_at > ?1
            RETURNING \(TwoFactorColumns.challenge)
            """,
            [at.milliseconds, tenant.rawValue, tokenHash], TwoFactorRows.challenge)
    }

    func deleteExpiredTwoFactorState(tenant: TenantID, before: Timestamp) throws -> Int {
        let bindings: [any SQLiteBindable] = [tenant.rawValue, before.milliseconds]
        return try db.execute("DELETE FROM sign_in_challenges WHERE tenant_id = ? AND expires_at < ?", bindings)
            + db.execute("DELETE FROM two_factor_pending WHERE tenant_id = ? AND expires_at < ?", bindings)
    }
}

private enum TwoFactorColumns {
    static let credential = """
        tenant_id, user_id, secret, key_id, algorithm, digits, period, enabled_at, last_used_step, \
        failed_attempts, locked_until
        """
    static let pending = "tenant_id, user_id, secret, key_id, created_at, expires_at"
    static let recovery = "tenant_id, user_id, slot, code_hash, used_at"
    static let challenge = """
        token_hash, tenant_id, user_id, user_agent, ip, location, device_name, created_at, expires_at, used_at
        """
}

private enum TwoFactorRows {
    static func credential(_ row: some SQLRow) throws -> TwoFactorCredential {
        TwoFactorCredential(
            tenantID: try RowDecoder.id(TenantID.self, row, "tenant_id", table: "two_factor"),
            userID: try RowDecoder.id(UserID.self, row, "user_id", table: "two_factor"),
            sealedSecret: SealedSecret(keyID: try row.string("key_id"), box: try row.blob("secret")),
            algorithm: try row.string("algorithm"), digits: try row.int("digits"), period: try row.int("period"),
            enabledAt: try RowDecoder.timestamp(row, "enabled_at"), lastUsedStep: try row.optionalInt64("last_used_step"),
            failedAttempts: try row.int("failed_attempts"),
            lockedUntil: try RowDecoder.optionalTimestamp(row, "locked_until"))
    }

    static func pending(_ row: some SQLRow) throws -> PendingTwoFactor {
        PendingTwoFactor(
            tenantID: try RowDecoder.id(TenantID.self, row, "tenant_id", table: "two_factor_pending"),
            userID: try RowDecoder.id(UserID.self, row, "user_id", table: "two_factor_pending"),
            sealedSecret: SealedSecret(keyID: try row.string("key_id"), box: try row.blob("secret")),
            createdAt: try RowDecoder.timestamp(row, "created_at"), expiresAt: try RowDecoder.timestamp(row, "expires_at"))
    }

    static func recovery(_ row: some SQLRow) throws -> RecoveryCode {
        RecoveryCode(
            tenantID: try RowDecoder.id(TenantID.self, row, "tenant_id", table: "recovery_codes"),
            userID: try RowDecoder.id(UserID.self, row, "user_id", table: "recovery_codes"),
            slot: try row.int("slot"), codeHash: try row.string("code_hash"),
            usedAt: try RowDecoder.optionalTimestamp(row, "used_at"))
    }

    static func challenge(_ row: some SQLRow) throws -> SignInChallenge {
        SignInChallenge(
            tokenHash: try row.blob("token_hash"),
            tenantID: try RowDecoder.id(TenantID.self, row, "tenant_id", table: "sign_in_challenges"),
            userID: try RowDecoder.id(UserID.self, row, "user_id", table: "sign_in_challenges"),
            client: ClientDetails(
                userAgent: try row.string("user_agent"), ip: try row.string("ip"), location: try row.string("location"),
                deviceName: try row.string("device_name")),
            createdAt: try RowDecoder.timestamp(row, "created_at"), expiresAt: try RowDecoder.timestamp(row, "expires_at"),
            usedAt: try RowDecoder.optionalTimestamp(row, "used_at"))
    }
}
