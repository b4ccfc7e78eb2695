extension DomainError {
    /// A reset that would restore an account with 2FA on came without a code.
    static let restoreCodeRequired = DomainError.invalid(
        .codeRequired, "two-factor is on: restoring the account needs a current code")
}

extension PasswordService {
    /// Whether a reset requested now for `user` restores the account: it is
    /// pending deletion, within its grace period, in a tenant that is not.
    /// A user who forgot the password can then still restore the account
    /// before it is purged.
    static func resetRestores(_ user: User, tenant: Tenant, at now: Timestamp) -> Bool {
        guard user.status == .pendingDeletion, tenant.status == .active, let due = user.purgeAfter else { return false }
        return now < due
    }

    /// Finishes a reset of an account pending deletion: sets the password
    /// and restores the account in one write, with a current code (spent in
    /// that write) when 2FA is on, exactly as RestoreAccount asks. Emits
    /// `password.reset` and `account.restored`. A grace period that ended,
    /// or a tenant deletion since, makes the token invalid.
    func resetPasswordRestoring(
        tenant: Tenant, user: User, tokenHash: [UInt8], passwordHash: String, code: String
    ) async throws -> Int {
        let invalid = DomainError(.unauthenticated, .resetTokenInvalid, "the reset token is not valid")
        let restore: @Sendable (any AccountStoreWriter) throws -> Int = { writer in
            let now = self.clock.now()
            try Self.requireActiveTenant(writer, tenant.id)
            guard let reset = try writer.consumePasswordReset(tenant: tenant.id, tokenHash: tokenHash, at: now),
                reset.userID == user.id, var current = try writer.user(tenant: tenant.id, id: user.id),
                current.status == .pendingDeletion, let due = current.purgeAfter, now < due,
                current.twoFactorEnabled == user.twoFactorEnabled
            else { throw invalid }
            current.passwordHash = passwordHash
            current.passwordChangedAt = now
            current.failedSignIns = 0
            current.lockedUntil = nil
            current.status = .active
            current.purgeAfter = nil
            try writer.update(current)
            try writer.discardPasswordResets(tenant: tenant.id, user: current.id, at: now)
            // Deletion revoked every session already; this keeps the count honest.
            let revoked = try writer.revokeSessionsAnnouncing(
                tenant: tenant.id, user: current.id, at: now, reason: SessionRevocationReason.passwordReset.rawValue)
            try writer.append(
                .passwordReset(userID: current.id, email: current.email, revokedSessions: revoked.count),
                tenant: tenant.id, at: now)
            try writer.append(.accountRestored(userID: current.id, email: current.email), tenant: tenant.id, at: now)
            for kind in [SecurityEventKind.passwordReset, .accountRestored] {
                try writer.append(
                    SecurityLogEntry(
                        tenantID: tenant.id, userID: current.id, kind: kind, ip: "", userAgent: "",
                        detail: kind == .accountRestored ? "by password reset" : "", createdAt: now))
            }
            return revoked.count
        }
        guard user.twoFactorEnabled else { return try await store.write(restore) }
        return try await credentials.withSecondFactor(
            tenant: tenant, user: user, code: code, recoveryCode: "", client: ClientDetails()
        ) { writer, _ in try restore(writer) }
    }
}
