public import MoatCrypto

/// Two-factor settings. The defaults are the documented behaviour.
public struct TwoFactorSettings: Sendable, Equatable {
    /// How long an unconfirmed enrolment may be confirmed. Default 15 minutes.
    public var pendingEnrollmentSeconds: Int64 = 900
    /// How long a sign-in challenge may be completed. Default 5 minutes.
    public var challengeSeconds: Int64 = 300
    /// Wrong codes in a row before the second factor waits. Default 5.
    public var lockoutThreshold = 5
    /// How long it waits. Default 15 minutes.
    public var lockoutSeconds: Int64 = 900
    /// Steps either side of now a code may come from. Default 1.
    public var skewSteps = 1

    public init() {}

    /// Recovery codes issued at a time.
    public static let recoveryCodeCount = 10
}

/// A started enrolment: what the user types or scans. Shown once.
public struct TwoFactorEnrollment: Sendable {
    /// The secret in base32, grouped by four for typing.
    public var secretBase32: String
    /// The `otpauth://totp/…` key URI.
    public var uri: String
    /// The QR code of `uri`.
    public var qrCode: QRCode
    public var expiresAt: Timestamp
}

/// A user's two-factor state, as shown to them.
public struct TwoFactorStatus: Sendable, Equatable {
    public var enabled: Bool
    public var enabledAt: Timestamp?
    public var recoveryCodesRemaining: Int
    /// When an unconfirmed enrolment expires, if one is pending.
    public var pendingEnrollmentExpiresAt: Timestamp?
    /// Until when wrong codes lock the second factor, if they do now.
    public var lockedUntil: Timestamp?
}

/// What a password sign-in led to.
public enum SignInOutcome: Sendable {
    /// Signed in: no second factor was owed.
    case signedIn(SignInResult)
    /// The password was right; `Users.CompleteSignIn` must follow with a code.
    case secondFactorRequired(SecondFactorChallenge)
}

/// The half-finished sign-in handed to the caller.
public struct SecondFactorChallenge: Sendable {
    /// The challenge token, shown once; only its SHA-256 is stored.
    public var token: String
    public var expiresAt: Timestamp
    public var user: User
}

/// How a caller proved the second factor.
enum SecondFactorProof: Sendable {
    /// A TOTP code of this time step.
    case totp(step: Int64)
    /// The recovery code in this slot; `remaining` unused ones after it.
    case recoveryCode(slot: Int, remaining: Int)
}

extension DomainError {
    static let totpCodeInvalid = DomainError(.unauthenticated, .totpCodeInvalid, "the code is wrong or expired")
    static let totpCodeReused = DomainError(
        .unauthenticated, .totpCodeReused, "this code was used already; wait for the next one")
    static let recoveryCodeInvalid = DomainError(
        .unauthenticated, .recoveryCodeInvalid, "the recovery code is wrong or was used already")
    static let challengeInvalid = DomainError(
        .unauthenticated, .challengeInvalid, "the sign-in challenge is unknown, used or expired; sign in again")
    static let twoFactorNotEnabled = DomainError(
        .failedPrecondition, .twoFactorNotEnabled, "two-factor authentication is not on")
    static func twoFactorLocked(retryAfter seconds: Int64) -> DomainError {
        DomainError(
            .resourceExhausted, .twoFactorLocked, "too many wrong codes; try again in \(seconds) s",
            details: ["retry_after_seconds": "\(seconds)"])
    }
}

extension AccountService {
    // MARK: Enrolment

    /// Starts enrolling an authenticator: needs the password again. A fresh
    /// 160-bit secret is sealed and kept pending for 15 minutes; the active
    /// authenticator (if any) stays until the new one is confirmed.
    public func beginTwoFactorEnrollment(tenant: Tenant, token: String, password: String, client: ClientDetails)
        async throws -> TwoFactorEnrollment
    {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        try await reauthenticate(tenant: tenant, user: user, password: password, client: client, action: "2FA enrolment")
        let secret = SecureBytes.random(20)
        let now = clock.now()
        let expiresAt = now.adding(seconds: configuration.twoFactor.pendingEnrollmentSeconds)
        let pending = PendingTwoFactor(
            tenantID: tenant.id, userID: user.id,
            sealedSecret: try secrets.sealTOTPSecret(secret, tenant: tenant.id, user: user.id), createdAt: now,
            expiresAt: expiresAt)
        let uri = TOTP.keyURI(issuer: tenant.name, account: user.email, secret: secret)
        let qrCode: QRCode
        do { qrCode = try QRCode.encode(uri, level: .medium) } catch {
            throw DomainError(.invalidArgument, .qrCodeTooLong, "the tenant name and email are too long for a QR code")
        }
        try await store.write { writer in
            guard try writer.user(tenant: tenant.id, id: user.id)?.status == .active else { throw DomainError.sessionInvalid }
            try writer.setPendingTwoFactor(pending)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .twoFactorEnrollmentStarted, ip: client.ip,
                    userAgent: client.userAgent, detail: "", createdAt: now))
        }
        return TwoFactorEnrollment(
            secretBase32: Base32.grouped(Base32.encode(secret)), uri: uri, qrCode: qrCode, expiresAt: expiresAt)
    }

    /// Confirms the pending enrolment with a code from the new
    /// authenticator. Turns 2FA on (or replaces the authenticator) and
    /// returns ten fresh recovery codes, shown once.
    public func confirmTwoFactorEnrollment(tenant: Tenant, token: String, code: String, client: ClientDetails)
        async throws -> (recoveryCodes: [String], enabledAt: Timestamp)
    {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        let (pending, active) = try await store.read { reader in
            (try reader.pendingTwoFactor(tenant: tenant.id, user: user.id), try reader.twoFactor(tenant: tenant.id, user: user.id))
        }
        guard let pending else {
            throw DomainError(.failedPrecondition, .enrollmentNotStarted, "no enrolment is pending; begin one first")
        }
        let now = clock.now()
        guard now < pending.expiresAt else {
            throw DomainError(.failedPrecondition, .enrollmentExpired, "the enrolment expired; begin a new one")
        }
        let secret = try secrets.openTOTPSecret(pending.sealedSecret, tenant: tenant.id, user: user.id)
        guard let step = try TOTP(secret: secret).verify(Self.cleanedCode(code), at: now.seconds, skew: configuration.twoFactor.skewSteps)
        else { throw DomainError.totpCodeInvalid }
        let (codes, hashed) = try await makeRecoveryCodes(tenant: tenant.id, user: user.id)
        let credential = TwoFactorCredential(
            tenantID: tenant.id, userID: user.id, sealedSecret: pending.sealedSecret, enabledAt: now,
            lastUsedStep: Int64(clamping: step))
        try await store.write { writer in
            guard var current = try writer.user(tenant: tenant.id, id: user.id), current.status == .active else {
                throw DomainError.sessionInvalid
            }
            // The pending secret must still be the one the code was checked
            // against (a concurrent BeginEnrollment replaces it).
            // (A key rotation re-sealing it meanwhile changes the box, not the secret.)
            guard let stored = try writer.pendingTwoFactor(tenant: tenant.id, user: user.id),
                stored.createdAt == pending.createdAt,
                self.secrets.sealSameTOTPSecret(stored.sealedSecret, pending.sealedSecret, tenant: tenant.id, user: user.id)
            else {
                throw DomainError(.failedPrecondition, .enrollmentNotStarted, "the enrolment was replaced; confirm the new one")
            }
            try writer.setTwoFactor(credential)
            try writer.deletePendingTwoFactor(tenant: tenant.id, user: user.id)
            try writer.replaceRecoveryCodes(tenant: tenant.id, user: user.id, with: hashed)
            current.twoFactorEnabled = true
            try writer.update(current)
            try writer.append(
                .twoFactorEnabled(userID: user.id, email: user.email, replaced: active != nil), tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .twoFactorEnabled, ip: client.ip,
                    userAgent: client.userAgent, detail: active != nil ? "authenticator replaced" : "", createdAt: now))
        }
        return (codes, now)
    }

    /// Turns 2FA off with a current code or the password. Removes the
    /// authenticator and the recovery codes.
    public func disableTwoFactor(tenant: Tenant, token: String, code: String, password: String, client: ClientDetails)
        async throws
    {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        let method: String
        switch (code.isEmpty, password.isEmpty) {
        case (false, true):
            method = "code"
            try await withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: client) {
                writer, _ in try self.disableWritten(writer: writer, tenant: tenant, user: user, method: method, client: client)
            }
        case (true, false):
            method = "password"
            try await reauthenticate(tenant: tenant, user: user, password: password, client: client, action: "2FA disable")
            try await store.write { writer in
                try self.disableWritten(writer: writer, tenant: tenant, user: user, method: method, client: client)
            }
        default:
            throw DomainError.invalid(.codeOrPasswordRequired, "give either a current code or the password")
        }
    }

    private func disableWritten(
        writer: any AccountStoreWriter, tenant: Tenant, user: User, method: String, client: ClientDetails
    ) throws {
        let now = clock.now()
        guard var current = try writer.user(tenant: tenant.id, id: user.id), current.status == .active else {
            throw DomainError.sessionInvalid
        }
        guard try writer.deleteTwoFactor(tenant: tenant.id, user: user.id) else { throw DomainError.twoFactorNotEnabled }
        current.twoFactorEnabled = false
        try writer.update(current)
        try writer.append(.twoFactorDisabled(userID: user.id, email: user.email, method: method), tenant: tenant.id, at: now)
        try writer.append(
            SecurityLogEntry(
                tenantID: tenant.id, userID: user.id, kind: .twoFactorDisabled, ip: client.ip,
                userAgent: client.userAgent, detail: "with \(method)", createdAt: now))
    }

    /// The session user's two-factor state.
    public func twoFactorStatus(tenant: Tenant, token: String) async throws -> TwoFactorStatus {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let now = clock.now()
        return try await store.read { reader in
            let credential = try reader.twoFactor(tenant: tenant.id, user: user.id)
            let pending = try reader.pendingTwoFactor(tenant: tenant.id, user: user.id).flatMap {
                now < $0.expiresAt ? $0 : nil
            }
            let remaining = credential == nil
                ? 0 : try reader.recoveryCodes(tenant: tenant.id, user: user.id).filter { $0.usedAt == nil }.count
            return TwoFactorStatus(
                enabled: credential != nil, enabledAt: credential?.enabledAt, recoveryCodesRemaining: remaining,
                pendingEnrollmentExpiresAt: pending?.expiresAt,
                lockedUntil: credential?.lockedUntil.flatMap { now < $0 ? $0 : nil })
        }
    }

    /// Replaces the recovery codes with ten new ones (the old stop
    /// working); needs a current code.
    public func regenerateRecoveryCodes(tenant: Tenant, token: String, code: String, client: ClientDetails)
        async throws -> [String]
    {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        guard !code.isEmpty else { throw DomainError.invalid(.codeRequired, "a current code is required") }
        let (codes, hashed) = try await makeRecoveryCodes(tenant: tenant.id, user: user.id)
        try await withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: client) { writer, _ in
            let now = self.clock.now()
            try writer.replaceRecoveryCodes(tenant: tenant.id, user: user.id, with: hashed)
            try writer.append(
                .twoFactorRecoveryCodesRegenerated(userID: user.id, email: user.email), tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .twoFactorRecoveryCodesRegenerated, ip: client.ip,
                    userAgent: client.userAgent, detail: "", createdAt: now))
        }
        return codes
    }

    /// Checks a current code for the session's user (step-up before a
    /// sensitive action). Replay and lockout rules as at sign-in.
    public func verifyTwoFactor(tenant: Tenant, token: String, code: String, client: ClientDetails) async throws {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        guard !code.isEmpty else { throw DomainError.invalid(.codeRequired, "a current code is required") }
        try await withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: Self.bounded(client)) {
            _, _ in
        }
    }

    // MARK: Signing in

    /// Completes a sign-in that owes a second factor: the challenge from
    /// SignIn plus a TOTP code or a recovery code. Creates the session.
    public func completeSignIn(
        tenant: Tenant, challenge: String, code: String, recoveryCode: String, client: ClientDetails
    ) async throws -> SignInResult {
        guard Self.plausibleToken(challenge) else { throw DomainError.challengeInvalid }
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
        let session = try await withSecondFactor(
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

    // MARK: Checking a code

    /// Checks a TOTP code or a recovery code of the user, one check at a
    /// time per user, and runs `body` in the write transaction that spends
    /// it. The spending is conditional (a later step than the last used, an
    /// unused recovery code): if it fails, or `body` throws, nothing is
    /// written. Wrong codes count toward the lockout; a locked second
    /// factor checks nothing.
    func withSecondFactor<T: Sendable>(
        tenant: Tenant, user: User, code: String, recoveryCode: String, client: ClientDetails,
        _ body: @escaping @Sendable (any AccountStoreWriter, SecondFactorProof) throws -> T
    ) async throws -> T {
        try await signInQueue.run("\(tenant.id.rawValue)/2fa/\(user.id.rawValue)") {
            let (proof, checked) = try await proveSecondFactor(
                tenant: tenant, user: user, code: code, recoveryCode: recoveryCode, client: client)
            do {
                return try await store.write { writer in
                    // What the code was checked against must still be what
                    // is stored: a re-enrolment confirmed (or codes
                    // regenerated, by another process) since the check
                    // replaced the secret or the code in that slot.
                    let current = try writer.twoFactor(tenant: tenant.id, user: user.id)
                    switch proof {
                    case .totp(let step):
                        guard let stored = current?.sealedSecret,
                            self.secrets.sealSameTOTPSecret(stored, checked.secret, tenant: tenant.id, user: user.id)
                        else { throw DomainError.totpCodeInvalid }
                        guard try writer.advanceTwoFactorStep(tenant: tenant.id, user: user.id, step: step) else {
                            throw DomainError.totpCodeReused
                        }
                    case .recoveryCode(let slot, let remaining):
                        let now = self.clock.now()
                        guard let stored = current?.sealedSecret,
                            self.secrets.sealSameTOTPSecret(stored, checked.secret, tenant: tenant.id, user: user.id),
                            try writer.recoveryCodes(tenant: tenant.id, user: user.id)
                                .first(where: { $0.slot == slot })?.codeHash == checked.codeHash,
                            try writer.useRecoveryCode(tenant: tenant.id, user: user.id, slot: slot, at: now)
                        else {
                            throw DomainError.recoveryCodeInvalid
                        }
                        try writer.setTwoFactorAttempts(tenant: tenant.id, user: user.id, failures: 0, lockedUntil: nil)
                        try writer.append(
                            .twoFactorRecoveryCodeUsed(userID: user.id, email: user.email, remaining: remaining),
                            tenant: tenant.id, at: now)
                        try writer.append(
                            SecurityLogEntry(
                                tenantID: tenant.id, userID: user.id, kind: .twoFactorRecoveryCodeUsed, ip: client.ip,
                                userAgent: client.userAgent, detail: "\(remaining) left", createdAt: now))
                    }
                    return try body(writer, proof)
                }
            } catch let error as DomainError where error == .totpCodeReused {
                try await logTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "reused code")
                throw error
            }
        }
    }

    /// Which code proves the second factor, before anything is spent, and
    /// what it was checked against (the sealed secret, the recovery code's
    /// hash), for the write to confirm it is unchanged.
    private func proveSecondFactor(
        tenant: Tenant, user: User, code: String, recoveryCode: String, client: ClientDetails
    ) async throws -> (SecondFactorProof, (secret: SealedSecret, codeHash: String?)) {
        guard code.isEmpty != recoveryCode.isEmpty else {
            throw DomainError.invalid(.codeRequired, "give exactly one of a code or a recovery code")
        }
        let now = clock.now()
        let (credential, codes) = try await store.read { reader in
            (try reader.twoFactor(tenant: tenant.id, user: user.id), try reader.recoveryCodes(tenant: tenant.id, user: user.id))
        }
        guard let credential else { throw DomainError.twoFactorNotEnabled }
        if let lockedUntil = credential.lockedUntil, now < lockedUntil {
            throw DomainError.twoFactorLocked(retryAfter: max(1, (lockedUntil.milliseconds - now.milliseconds + 999) / 1000))
        }
        if !code.isEmpty {
            let secret = try secrets.openTOTPSecret(credential.sealedSecret, tenant: tenant.id, user: user.id)
            let totp: TOTP
            do {
                totp = try TOTP(
                    secret: secret, digits: credential.digits, period: credential.period,
                    algorithm: HashAlgorithm(rawValue: credential.algorithm) ?? .sha1)
            } catch { throw DomainError.secretUnreadable }
            if let step = totp.verify(Self.cleanedCode(code), at: now.seconds, skew: configuration.twoFactor.skewSteps) {
                let step = Int64(clamping: step)
                if let last = credential.lastUsedStep, step <= last {
                    try await logTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "reused code")
                    throw DomainError.totpCodeReused
                }
                return (.totp(step: step), (credential.sealedSecret, nil))
            }
            try await recordTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "wrong code")
            throw DomainError.totpCodeInvalid
        }
        let unused = codes.filter { $0.usedAt == nil }
        if let normalized = Self.normalizedRecoveryCode(recoveryCode) {
            for candidate in unused {
                if try await hasher.verify(Array(normalized.utf8), against: candidate.codeHash) {
                    return (
                        .recoveryCode(slot: candidate.slot, remaining: unused.count - 1),
                        (credential.sealedSecret, candidate.codeHash)
                    )
                }
            }
        }
        try await recordTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "wrong recovery code")
        throw DomainError.recoveryCodeInvalid
    }

    /// Counts a wrong code; the failure that reaches the threshold locks
    /// the second factor and answers TWO_FACTOR_LOCKED itself.
    private func recordTwoFactorFailure(tenant: Tenant, user: User, client: ClientDetails, detail: String) async throws {
        let settings = configuration.twoFactor
        let now = clock.now()
        let locked = try await store.write { writer -> Bool in
            guard let credential = try writer.twoFactor(tenant: tenant.id, user: user.id) else { return false }
            // A lock that has run out starts a fresh count.
            let previous = credential.lockedUntil.map { $0 <= now } == true ? 0 : credential.failedAttempts
            let failures = previous + 1
            let lockedUntil = failures >= settings.lockoutThreshold ? now.adding(seconds: settings.lockoutSeconds) : nil
            try writer.setTwoFactorAttempts(tenant: tenant.id, user: user.id, failures: failures, lockedUntil: lockedUntil)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: lockedUntil == nil ? .twoFactorFailed : .twoFactorLocked,
                    ip: client.ip, userAgent: client.userAgent, detail: detail, createdAt: now))
            return lockedUntil != nil
        }
        if locked { throw DomainError.twoFactorLocked(retryAfter: settings.lockoutSeconds) }
    }

    /// Logs a refused code that does not count toward the lockout (a
    /// replayed one: the user's own double submit, or a relayed code).
    private func logTwoFactorFailure(tenant: Tenant, user: User, client: ClientDetails, detail: String) async throws {
        let now = clock.now()
        try await store.write { writer in
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .twoFactorFailed, ip: client.ip,
                    userAgent: client.userAgent, detail: detail, createdAt: now))
        }
    }

    // MARK: Codes

    /// A code as typed: spaces and hyphens dropped ("123 456").
    static func cleanedCode(_ code: String) -> String {
        guard code.utf8.count <= 32 else { return "" }
        return String(code.filter { $0 != " " && $0 != "-" })
    }

    /// The recovery-code alphabet: lowercase letters and digits without
    /// the look-alikes 0, 1, l and o. 32 symbols, 5 bits each.
    static let recoveryAlphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")

    /// Ten fresh recovery codes (`xxxxx-xxxxx`, 50 bits each) and their
    /// Argon2id hashes for the store.
    func makeRecoveryCodes(tenant: TenantID, user: UserID) async throws -> ([String], [RecoveryCode]) {
        var codes: [String] = []
        for _ in 0..<TwoFactorSettings.recoveryCodeCount {
            let symbols = SecureBytes.random(10).map { Self.recoveryAlphabet[Int($0 & 31)] }
            codes.append(String(symbols[0..<5]) + "-" + String(symbols[5...]))
        }
        var hashed: [RecoveryCode] = []
        for (slot, code) in codes.enumerated() {
            let normalized = Self.normalizedRecoveryCode(code)!
            hashed.append(
                RecoveryCode(
                    tenantID: tenant, userID: user, slot: slot, codeHash: try await hasher.hash(Array(normalized.utf8))))
        }
        return (codes, hashed)
    }

    /// A recovery code as typed, normalized (lowercase, no spaces or
    /// hyphens), or nil if it cannot be one.
    static func normalizedRecoveryCode(_ input: String) -> String? {
        guard input.utf8.count <= 64 else { return nil }
        let cleaned = input.lowercased().filter { $0 != " " && $0 != "-" }
        guard cleaned.count == 10, cleaned.allSatisfy({ recoveryAlphabet.contains($0) }) else { return nil }
        return cleaned
    }

    // MARK: Re-authentication

    /// Checks the user's password again before a sensitive change, through
    /// the sign-in lockout: a stolen session must not become an unlimited
    /// password oracle.
    func reauthenticate(tenant: Tenant, user: User, password: String, client: ClientDetails, action: String)
        async throws
    {
        try await signInQueue.run("\(tenant.id.rawValue)/\(user.email)") {
            let fresh = try await store.read { try $0.user(tenant: tenant.id, id: user.id) } ?? user
            if let wait = Lockout(failures: fresh.failedSignIns, lockedUntil: fresh.lockedUntil).retryAfter(at: clock.now()) {
                throw Lockout.lockedError(retryAfter: wait)
            }
            guard let candidate = try? Self.candidatePassword(password),
                try await hasher.verify(candidate, against: fresh.passwordHash)
            else {
                try await recordFailure(tenant: tenant, user: user.id, client: client, detail: "wrong password on \(action)")
                throw DomainError(.unauthenticated, .invalidCredentials, "the password is wrong")
            }
        }
    }
}
