import Foundation

/// The result of a successful sign-in.
public struct SignInResult: Sendable {
    /// The session token, shown once. Never log it.
    public var token: String
    public var session: Session
    public var user: User
}

/// Signing in and out: password, lockout, per-address throttle, the
/// second-factor challenge and the new-device notice.
public final class SignInService: AccountFeature {
    let context: AccountContext
    /// Password and second-factor checks shared with other features.
    let credentials: Credentials

    init(context: AccountContext, credentials: Credentials) {
        self.context = context
        self.credentials = credentials
    }
}

extension SignInService {
    /// Signs in with a password alone: for accounts without a second
    /// factor. An account with 2FA on answers FAILED_PRECONDITION
    /// (`SECOND_FACTOR_REQUIRED`); use ``beginSignIn(tenant:email:password:client:)``
    /// and ``completeSignIn(tenant:challenge:code:recoveryCode:client:)``.
    public func signIn(tenant: Tenant, email: String, password: String, client: ClientDetails) async throws
        -> SignInResult
    {
        switch try await beginSignIn(tenant: tenant, email: email, password: password, client: client) {
        case .signedIn(let result): return result
        case .secondFactorRequired:
            throw DomainError(.failedPrecondition, .secondFactorRequired, "the account needs a second factor")
        }
    }

    /// Checks email and password; creates a session, or, when the account
    /// has 2FA on, a challenge that `completeSignIn` finishes with a code.
    ///
    /// Unknown email and wrong password are the same UNAUTHENTICATED
    /// (`INVALID_CREDENTIALS`) after the same Argon2id work; repeated
    /// failures wait (`SIGN_IN_LOCKED`), for unknown emails too.
    public func beginSignIn(tenant: Tenant, email: String, password: String, client: ClientDetails) async throws
        -> SignInOutcome
    {
        let email = try EmailAddress.normalize(email)
        let secret = try Self.candidatePassword(password)
        let client = Self.bounded(client)
        // Attempts on one account are checked one at a time, so parallel
        // guesses cannot outrun the lockout.
        return try await signInQueue.run("\(tenant.id.rawValue)/\(email)") {
            try await checkedSignIn(tenant: tenant, email: email, secret: secret, client: client)
        }
    }

    private func checkedSignIn(tenant: Tenant, email: String, secret: [UInt8], client: ClientDetails) async throws
        -> SignInOutcome
    {
        let user = try await credentials.checkPassword(tenant: tenant, email: email, secret: secret, client: client)
        if tenant.status == .pendingDeletion { throw DomainError.tenantPendingDeletion(purgeAfter: tenant.purgeAfter) }
        switch user.status {
        case .active: break
        case .disabled:
            throw DomainError(.failedPrecondition, .accountDisabled, "the account is disabled")
        case .pendingDeletion:
            throw DomainError.accountPendingDeletion(purgeAfter: user.purgeAfter ?? clock.now())
        }

        // Parameters changed since this hash was made: store a new one.
        let rehashed = hasher.needsRehash(user.passwordHash) ? try await hasher.hash(secret) : nil
        if user.twoFactorEnabled {
            return .secondFactorRequired(
                try await issueChallenge(tenant: tenant, user: user, client: client, rehashed: rehashed))
        }
        let now = clock.now()
        let token = OpaqueToken.make()
        let policy = tenant.policy
        let session = Session(
            id: .random(), tenantID: tenant.id, userID: user.id, tokenHash: OpaqueToken.hash(token), client: client,
            createdAt: now, lastActiveAt: now, absoluteExpiresAt: now.adding(seconds: policy.sessionAbsoluteLifetimeSeconds),
            idleTimeoutSeconds: policy.sessionIdleTimeoutSeconds, secondFactorSatisfied: false)
        let signedIn = try await store.write { writer -> User in
            let current = try Self.passwordAccepted(
                writer, tenant: tenant.id, user: user, rehashed: rehashed, twoFactorEnabled: false)
            try writer.insert(session)
            try Self.enforceSessionCap(
                writer: writer, tenant: tenant, user: user.id, keep: session.id, now: now,
                pendingLastActive: self.sessionCache.pendingLastActive)
            try self.announceIfNewDevice(writer, user: current, session: session, now: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .signInSucceeded, ip: client.ip,
                    userAgent: client.userAgent, detail: "session \(session.id)", createdAt: now))
            return current
        }
        return .signedIn(SignInResult(token: token, session: session, user: signedIn))
    }

    /// Records, in the write that follows a right password, that it was
    /// right: the lockout count resets and a rehash is stored. Refuses if,
    /// since the read, the tenant's deletion was requested, the user stopped
    /// being active, or 2FA was turned on or off (`twoFactorEnabled` is what
    /// the caller decided on): sign in again.
    static func passwordAccepted(
        _ writer: any AccountStoreWriter, tenant: TenantID, user: User, rehashed: String?, twoFactorEnabled: Bool
    ) throws -> User {
        try requireActiveTenant(writer, tenant)
        guard var current = try writer.user(tenant: tenant, id: user.id), current.status == .active,
            current.twoFactorEnabled == twoFactorEnabled
        else {
            throw DomainError.invalidCredentials
        }
        current.failedSignIns = 0
        current.lockedUntil = nil
        if let rehashed, current.passwordHash == user.passwordHash { current.passwordHash = rehashed }
        try writer.update(current)
        return current
    }

    /// Revokes the oldest sessions past the tenant's cap.
    ///
    /// Liveness counts activity not yet flushed (`pendingLastActive`), as
    /// Validate does, so a session kept alive in memory is counted too.
    static func enforceSessionCap(
        writer: any AccountStoreWriter, tenant: Tenant, user: UserID, keep: SessionID, now: Timestamp,
        pendingLastActive: (SessionID) -> Timestamp?
    ) throws {
        let cap = tenant.policy.maxSessionsPerUser
        guard cap > 0 else { return }
        // The new session always stays; the oldest others go.
        let others = try writer.sessions(tenant: tenant.id, user: user)
            .filter { session in
                let lastActive = max(session.lastActiveAt, pendingLastActive(session.id) ?? session.lastActiveAt)
                return session.id != keep && session.isLive(at: now, lastActive: lastActive)
            }
            .sorted { ($0.createdAt, $0.id.rawValue) < ($1.createdAt, $1.id.rawValue) }
        let excess = others.count + 1 - cap
        guard excess > 0 else { return }
        for session in others.prefix(excess) {
            if try writer.revokeSession(tenant: tenant.id, id: session.id, at: now, reason: SessionRevocationReason.sessionCap.rawValue) {
                try writer.append(
                    .sessionRevoked(sessionID: session.id, userID: user, reason: SessionRevocationReason.sessionCap.rawValue), tenant: tenant.id, at: now)
            }
        }
    }

    /// Revokes the session behind the token.
    public func signOut(tenant: Tenant, token: String) async throws {
        let (session, user) = try await authenticate(tenant: tenant.id, token: token)
        let now = clock.now()
        try await store.write { writer in
            guard try writer.revokeSession(tenant: tenant.id, id: session.id, at: now, reason: SessionRevocationReason.signOut.rawValue) else {
                throw DomainError.sessionInvalid
            }
            try writer.append(
                .sessionRevoked(sessionID: session.id, userID: user.id, reason: SessionRevocationReason.signOut.rawValue), tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .signedOut, ip: session.client.ip,
                    userAgent: session.client.userAgent, detail: "session \(session.id)", createdAt: now))
        }
    }

    /// Completes a sign-in that owes a second factor: the challenge from
    /// SignIn plus a TOTP code or a recovery code. Creates the session.
    public func completeSignIn(
        tenant: Tenant, challenge: String, code: String, recoveryCode: String, client: ClientDetails
    ) async throws -> SignInResult {
        guard SessionAuthority.plausibleToken(challenge) else { throw DomainError.challengeInvalid }
        let hash = OpaqueToken.hash(challenge)
        let start = clock.now()
        let found = try await store.read { reader -> (SignInChallenge, User)? in
            guard let challenge = try reader.signInChallenge(tenant: tenant.id, tokenHash: hash),
                challenge.usedAt == nil, start < challenge.expiresAt,
                let user = try reader.user(tenant: tenant.id, id: challenge.userID), user.status == .active,
                // A password change or reset since the challenge voids it.
                challenge.createdAt >= user.passwordChangedAt
            else { return nil }
            return (challenge, user)
        }
        guard let (pending, user) = found else { throw DomainError.challengeInvalid }
        let client = pending.client
        let policy = tenant.policy
        let token = OpaqueToken.make()
        let session = try await credentials.withSecondFactor(
            tenant: tenant, user: user, code: code, recoveryCode: recoveryCode, client: client
        ) { writer, proof -> Session in
            let now = self.clock.now()
            guard try writer.consumeSignInChallenge(tenant: tenant.id, tokenHash: hash, at: now) != nil,
                let current = try writer.user(tenant: tenant.id, id: user.id), current.status == .active,
                pending.createdAt >= current.passwordChangedAt,
                // A tenant deletion requested since the challenge voids it.
                try writer.tenant(id: tenant.id)?.status == .active
            else {
                throw DomainError.challengeInvalid
            }
            let session = Session(
                id: .random(), tenantID: tenant.id, userID: user.id, tokenHash: OpaqueToken.hash(token), client: client,
                createdAt: now, lastActiveAt: now,
                absoluteExpiresAt: now.adding(seconds: policy.sessionAbsoluteLifetimeSeconds),
                idleTimeoutSeconds: policy.sessionIdleTimeoutSeconds, secondFactorSatisfied: true)
            try writer.insert(session)
            try Self.enforceSessionCap(
                writer: writer, tenant: tenant, user: user.id, keep: session.id, now: now,
                pendingLastActive: self.sessionCache.pendingLastActive)
            let factor: String
            switch proof {
            case .totp: factor = "authenticator code"
            case .recoveryCode: factor = "recovery code"
            }
            try self.announceIfNewDevice(writer, user: current, session: session, now: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .signInSucceeded, ip: client.ip,
                    userAgent: client.userAgent, detail: "session \(session.id) with \(factor)", createdAt: now))
            return session
        }
        return SignInResult(token: token, session: session, user: user)
    }

    /// Creates the challenge of a sign-in whose password was right and
    /// whose user has 2FA on.
    func issueChallenge(
        tenant: Tenant, user: User, client: ClientDetails, rehashed: String?
    ) async throws -> SecondFactorChallenge {
        let now = clock.now()
        let token = OpaqueToken.make()
        let challenge = SignInChallenge(
            tokenHash: OpaqueToken.hash(token), tenantID: tenant.id, userID: user.id, client: client, createdAt: now,
            expiresAt: now.adding(seconds: configuration.twoFactor.challengeSeconds))
        let current = try await store.write { writer -> User in
            let current = try Self.passwordAccepted(
                writer, tenant: tenant.id, user: user, rehashed: rehashed, twoFactorEnabled: true)
            try writer.insert(challenge)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .signInSecondFactorRequired, ip: client.ip,
                    userAgent: client.userAgent, detail: "", createdAt: now))
            return current
        }
        return SecondFactorChallenge(token: token, expiresAt: challenge.expiresAt, user: current)
    }
}
