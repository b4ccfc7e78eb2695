import Foundation

/// The result of a successful sign-in.
public struct SignInResult: Sendable {
    /// The session token, shown once. Never log it.
    public var token: String
    public var session: Session
    public var user: User
}

extension AccountService {
    // MARK: Managing users

    /// Creates a user. Administrators and tenant owners/admins may; only
    /// owners (and administrators) may create owners.
    public func createUser(tenant: Tenant, actor: Principal, email: String, password: String, role: TenantRole) async throws
        -> User
    {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        if tenant.status == .pendingDeletion { throw DomainError.tenantPendingDeletion(purgeAfter: tenant.purgeAfter) }
        guard role <= actor.role else {
            throw DomainError(.permissionDenied, .roleRequired, "only an owner may create an owner")
        }
        let email = try EmailAddress.normalize(email)
        try PasswordRules.check(password, minimumLength: tenant.policy.minPasswordLength, email: email)
        let hash = try await hasher.hash(PasswordRules.normalized(password))
        let now = clock.now()
        let user = User(id: .random(), tenantID: tenant.id, email: email, passwordHash: hash, role: role, createdAt: now)
        try await store.write { writer in
            try Self.requireActiveTenant(writer, tenant.id)
            try writer.insert(user)
            try writer.append(.userCreated(userID: user.id, email: email, role: role), tenant: tenant.id, at: now)
        }
        return user
    }

    /// A user, for administrators, owners/admins, or the user themself.
    public func user(tenant: Tenant, actor: Principal, id: String) async throws -> User {
        guard let id = UserID(id) else { throw DomainError.userNotFound }
        guard actor.belongs(to: tenant.id), actor.managesUsers || actor.userID == id else { throw DomainError.forbidden }
        guard let user = try await store.read({ try $0.user(tenant: tenant.id, id: id) }) else {
            throw DomainError.userNotFound
        }
        return user
    }

    /// A page of the tenant's users ordered by email.
    public func listUsers(tenant: Tenant, actor: Principal, pageSize: Int, pageToken: String) async throws
        -> (users: [User], nextPageToken: String)
    {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        let size = try Self.pageSize(pageSize)
        let after = try Self.decodePageToken(pageToken)
        let page = try await store.read { try $0.users(tenant: tenant.id, afterEmail: after, limit: size + 1) }
        let users = Array(page.prefix(size))
        return (users, page.count > size ? Self.encodePageToken(users.last?.email) : "")
    }

    /// Disables (revoking every session) or re-enables a user.
    public func setUserEnabled(tenant: Tenant, actor: Principal, id: String, enabled: Bool) async throws -> User {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        guard let id = UserID(id) else { throw DomainError.userNotFound }
        guard actor.userID != id else {
            throw DomainError(.failedPrecondition, .cannotDisableSelf, "you cannot disable or enable yourself")
        }
        let now = clock.now()
        let actorRole = actor.role
        return try await store.write { writer in
            guard var user = try writer.user(tenant: tenant.id, id: id) else { throw DomainError.userNotFound }
            guard user.role <= actorRole else {
                throw DomainError(.permissionDenied, .roleRequired, "only an owner may disable or enable an owner")
            }
            switch (enabled, user.status) {
            case (false, .active):
                user.status = .disabled
                try writer.update(user)
                _ = try writer.revokeSessionsAnnouncing(tenant: tenant.id, user: id, at: now, reason: SessionRevocationReason.userDisabled.rawValue)
                try writer.append(.userDisabled(userID: id, email: user.email), tenant: tenant.id, at: now)
                try writer.append(
                    SecurityLogEntry(
                        tenantID: tenant.id, userID: id, kind: .userDisabled, ip: "", userAgent: "", detail: "",
                        createdAt: now))
            case (true, .disabled):
                user.status = .active
                user.failedSignIns = 0
                user.lockedUntil = nil
                try writer.update(user)
                try writer.append(.userEnabled(userID: id, email: user.email), tenant: tenant.id, at: now)
                try writer.append(
                    SecurityLogEntry(
                        tenantID: tenant.id, userID: id, kind: .userEnabled, ip: "", userAgent: "", detail: "",
                        createdAt: now))
            case (_, .pendingDeletion):
                throw DomainError(
                    .failedPrecondition, .accountPendingDeletion, "the account is scheduled for deletion")
            default:
                break  // already in the asked state
            }
            return user
        }
    }

    // MARK: Signing in

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

    /// A password as typed at sign-in, NFC-normalized; longer than any valid
    /// password is INVALID_ARGUMENT (`PASSWORD_TOO_LONG`) without hashing.
    static func candidatePassword(_ password: String) throws(DomainError) -> [UInt8] {
        // A cheap bound first: nothing this long normalizes to 1024 characters.
        guard password.utf8.count <= PasswordRules.maximumLength * 18 else {
            throw .invalid(.passwordTooLong, "the password is longer than any valid password")
        }
        let normalized = password.precomposedStringWithCanonicalMapping
        guard normalized.unicodeScalars.count <= PasswordRules.maximumLength else {
            throw .invalid(.passwordTooLong, "the password is longer than any valid password")
        }
        return Array(normalized.utf8)
    }

    private func checkedSignIn(tenant: Tenant, email: String, secret: [UInt8], client: ClientDetails) async throws
        -> SignInOutcome
    {
        let user = try await checkPassword(tenant: tenant, email: email, secret: secret, client: client)
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

    /// The user behind an email and password, through the lockout: unknown
    /// email and wrong password are the same UNAUTHENTICATED
    /// (`INVALID_CREDENTIALS`) after the same Argon2id work. Callers hold
    /// the sign-in queue of the email.
    func checkPassword(tenant: Tenant, email: String, secret: [UInt8], client: ClientDetails) async throws -> User {
        let start = clock.now()
        try await checkAddress(tenant: tenant, client: client, at: start)
        let user = try await store.read { try $0.user(tenant: tenant.id, email: email) }

        guard let user else {
            let lockout = unknownEmails.lockout(tenant: tenant.id, email: email)
            if let wait = lockout.retryAfter(at: start) { throw Lockout.lockedError(retryAfter: wait) }
            _ = try await hasher.verifyDecoy(secret)
            unknownEmails.record(tenant: tenant.id, email: email, lockout.failed(at: clock.now(), policy: tenant.policy))
            try await countAddressFailure(tenant: tenant, client: client)
            throw DomainError.invalidCredentials
        }

        // While locked nothing is checked and nothing is written (the
        // failure that locked it is in the security log already), so locked
        // attempts cost an attacker nothing and us nothing.
        if let wait = Lockout(failures: user.failedSignIns, lockedUntil: user.lockedUntil).retryAfter(at: start) {
            throw Lockout.lockedError(retryAfter: wait)
        }

        guard try await hasher.verify(secret, against: user.passwordHash) else {
            try await recordFailure(tenant: tenant, user: user.id, client: client, detail: "wrong password")
            try await countAddressFailure(tenant: tenant, client: client)
            throw DomainError.invalidCredentials
        }
        return user
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

    /// Counts a wrong password toward the account's lockout and logs it.
    func recordFailure(tenant: Tenant, user: UserID, client: ClientDetails, detail: String) async throws {
        let now = clock.now()
        let policy = tenant.policy
        try await store.write { writer in
            guard var current = try writer.user(tenant: tenant.id, id: user) else { return }
            let next = Lockout(failures: current.failedSignIns, lockedUntil: current.lockedUntil)
                .failed(at: now, policy: policy)
            current.failedSignIns = next.failures
            current.lockedUntil = next.lockedUntil
            try writer.update(current)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user, kind: .signInFailed, ip: client.ip,
                    userAgent: client.userAgent, detail: detail, createdAt: now))
        }
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

    /// Client details cut to sane sizes: they come from callers and end up
    /// in logs and lists.
    static func bounded(_ client: ClientDetails) -> ClientDetails {
        func clip(_ value: String, _ limit: Int) -> String {
            let cleaned = String(value.unicodeScalars.filter { $0.properties.generalCategory != .control }.map(Character.init))
            return cleaned.count <= limit ? cleaned : String(cleaned.prefix(limit))
        }
        return ClientDetails(
            userAgent: clip(client.userAgent, 512), ip: clip(client.ip, 64), location: clip(client.location, 128),
            deviceName: clip(client.deviceName, 128))
    }
}
