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

/// TOTP two-factor: enrolment, status, step-up, recovery codes, disabling.
public final class TwoFactorService: AccountFeature {
    let context: AccountContext
    /// Password and second-factor checks shared with other features.
    let credentials: Credentials

    init(context: AccountContext, credentials: Credentials) {
        self.context = context
        self.credentials = credentials
    }
}

extension TwoFactorService {
    // MARK: Enrolment

    /// Starts enrolling an authenticator: needs the password again. A fresh
    /// 160-bit secret is sealed and kept pending for 15 minutes; the active
    /// authenticator (if any) stays until the new one is confirmed.
    public func beginTwoFactorEnrollment(tenant: Tenant, token: String, password: String, client: ClientDetails)
        async throws -> TwoFactorEnrollment
    {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        try await credentials.reauthenticate(tenant: tenant, user: user, password: password, client: client, action: "2FA enrolment")
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
        guard let step = try TOTP(secret: secret).verify(Credentials.cleanedCode(code), at: now.seconds, skew: configuration.twoFactor.skewSteps)
        else { throw DomainError.totpCodeInvalid }
        let (codes, hashed) = try await credentials.makeRecoveryCodes(tenant: tenant.id, user: user.id)
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
            try await credentials.withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: client) {
                writer, _ in try self.disableWritten(writer: writer, tenant: tenant, user: user, method: method, client: client)
            }
        case (true, false):
            method = "password"
            try await credentials.reauthenticate(tenant: tenant, user: user, password: password, client: client, action: "2FA disable")
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
        let (codes, hashed) = try await credentials.makeRecoveryCodes(tenant: tenant.id, user: user.id)
        try await credentials.withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: client) { writer, _ in
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
        try await credentials.withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: Self.bounded(client)) {
            _, _ in
        }
    }
}
