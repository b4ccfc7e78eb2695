import Foundation

/// Passwords: change, reset by emailed token, and the reset that restores
/// an account during its deletion grace period.
public final class PasswordService: AccountFeature {
    let context: AccountContext
    /// Password and second-factor checks shared with other features.
    let credentials: Credentials

    init(context: AccountContext, credentials: Credentials) {
        self.context = context
        self.credentials = credentials
    }
}

extension PasswordService {
    /// Changes the password of the session's user. Needs the current
    /// password; optionally signs out every other session. Emits
    /// `password.changed` in the same transaction.
    ///
    /// - Returns: how many other sessions were revoked.
    public func changePassword(
        tenant: Tenant, token: String, currentPassword: String, newPassword: String, revokeOtherSessions: Bool,
        client: ClientDetails
    ) async throws -> Int {
        let (session, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        try await credentials.reauthenticate(
            tenant: tenant, user: user, password: currentPassword, client: client, action: "password change")
        try PasswordRules.check(newPassword, minimumLength: tenant.policy.minPasswordLength, email: user.email)
        let hash = try await hasher.hash(PasswordRules.normalized(newPassword))
        let now = clock.now()
        return try await store.write { writer in
            guard var current = try writer.user(tenant: tenant.id, id: user.id), current.status == .active,
                try writer.session(tenant: tenant.id, id: session.id)?.revokedAt == nil
            else { throw DomainError.sessionInvalid }
            current.passwordHash = hash
            current.passwordChangedAt = now
            current.failedSignIns = 0
            current.lockedUntil = nil
            try writer.update(current)
            // Reset links sent before the change must not undo it.
            try writer.discardPasswordResets(tenant: tenant.id, user: user.id, at: now)
            var revoked: [SessionID] = []
            if revokeOtherSessions {
                revoked = try writer.revokeSessionsAnnouncing(
                    tenant: tenant.id, user: user.id, except: session.id, at: now, reason: SessionRevocationReason.passwordChanged.rawValue)
            }
            try writer.append(
                .passwordChanged(
                    userID: user.id, email: user.email, ip: client.ip, userAgent: client.userAgent,
                    revokedSessions: revoked.count),
                tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .passwordChanged, ip: client.ip,
                    userAgent: client.userAgent,
                    detail: revoked.isEmpty ? "" : "\(revoked.count) other sessions signed out", createdAt: now))
            return revoked.count
        }
    }

    /// Starts a password reset. Always succeeds, whether or not the account
    /// exists (no enumeration): for an existing active account a single-use
    /// token goes out in `password_reset.requested`; for an unknown email
    /// `password_reset.unknown_email` is written instead, so both paths do
    /// the same work (one write) and the mail service may tell the address
    /// owner that nobody has an account there.
    public func requestPasswordReset(tenant: Tenant, email: String, client: ClientDetails) async throws {
        let email = try EmailAddress.normalize(email)
        let client = Self.bounded(client)
        let now = clock.now()
        let token = OpaqueToken.make()
        let expires = now.adding(seconds: configuration.resetTokenLifetimeSeconds)
        try await store.write { writer in
            guard let user = try writer.user(tenant: tenant.id, email: email),
                user.status == .active || Self.resetRestores(user, tenant: tenant, at: now)
            else {
                try writer.append(.passwordResetUnknownEmail(email: email, ip: client.ip), tenant: tenant.id, at: now)
                return
            }
            try writer.insert(
                PasswordResetToken(
                    tokenHash: OpaqueToken.hash(token), tenantID: tenant.id, userID: user.id, createdAt: now,
                    expiresAt: expires))
            try writer.append(
                .passwordResetRequested(
                    userID: user.id, email: user.email, token: token, expiresAt: expires, ip: client.ip,
                    userAgent: client.userAgent, restoresAccount: user.status == .pendingDeletion),
                tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .passwordResetRequested, ip: client.ip,
                    userAgent: client.userAgent, detail: "", createdAt: now))
        }
    }

    /// Sets a new password with a reset token and revokes every session.
    /// A used, expired, unknown or other-tenant token is UNAUTHENTICATED
    /// (`RESET_TOKEN_INVALID`). The token is only spent once the new
    /// password passed the rules.
    ///
    /// For an account pending deletion the reset also restores it (see
    /// ``resetPasswordRestoring(tenant:user:tokenHash:passwordHash:code:)``);
    /// `code` is then required when 2FA is on, and ignored otherwise.
    ///
    /// - Returns: how many sessions were revoked.
    public func resetPassword(tenant: Tenant, token: String, newPassword: String, code: String = "") async throws -> Int {
        let invalid = DomainError(.unauthenticated, .resetTokenInvalid, "the reset token is not valid")
        guard !token.isEmpty, token.utf8.count <= 256 else { throw invalid }
        let hash = OpaqueToken.hash(token)
        let start = clock.now()
        let pending = try await store.read { reader -> (PasswordResetToken, User)? in
            guard let reset = try reader.passwordReset(tenant: tenant.id, tokenHash: hash), reset.usedAt == nil,
                start < reset.expiresAt, let user = try reader.user(tenant: tenant.id, id: reset.userID),
                user.status == .active || user.status == .pendingDeletion
            else { return nil }
            return (reset, user)
        }
        guard let (_, user) = pending else { throw invalid }
        try PasswordRules.check(newPassword, minimumLength: tenant.policy.minPasswordLength, email: user.email)
        if user.status == .pendingDeletion, user.twoFactorEnabled, code.isEmpty { throw DomainError.restoreCodeRequired }
        let passwordHash = try await hasher.hash(PasswordRules.normalized(newPassword))
        if user.status == .pendingDeletion {
            return try await resetPasswordRestoring(
                tenant: tenant, user: user, tokenHash: hash, passwordHash: passwordHash, code: code)
        }
        let now = clock.now()
        return try await store.write { writer in
            guard let reset = try writer.consumePasswordReset(tenant: tenant.id, tokenHash: hash, at: now),
                var current = try writer.user(tenant: tenant.id, id: reset.userID), current.status == .active
            else { throw invalid }
            current.passwordHash = passwordHash
            current.passwordChangedAt = now
            current.failedSignIns = 0
            current.lockedUntil = nil
            try writer.update(current)
            // Every other outstanding reset link dies with this one.
            try writer.discardPasswordResets(tenant: tenant.id, user: current.id, at: now)
            let revoked = try writer.revokeSessionsAnnouncing(
                tenant: tenant.id, user: current.id, at: now, reason: SessionRevocationReason.passwordReset.rawValue)
            try writer.append(
                .passwordReset(userID: current.id, email: current.email, revokedSessions: revoked.count),
                tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: current.id, kind: .passwordReset, ip: "", userAgent: "",
                    detail: "\(revoked.count) sessions signed out", createdAt: now))
            return revoked.count
        }
    }
}
